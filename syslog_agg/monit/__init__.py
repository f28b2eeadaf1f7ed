"""syslog_agg/monit"""
