"""Grafana dashboards (grafanalib), alert rules, their evaluator and their test runner."""
