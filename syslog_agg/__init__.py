"""syslog_agg"""
