"""A monit-style supervisor: managed children or pidfile daemons, checked every cycle.

Used by `fobs monit -c FILE` and, as a library, by `fobs up`:

    from fobs.syslog_agg.monit import Supervisor, SupervisorConfig, ProcessConfig, TcpCheck
    config = SupervisorConfig(cycle=2.0, process=(
        ProcessConfig(name="nats", command=("nats-server", "-p", "4222"),
                      tcp=(TcpCheck(port=4222),)),))
    await Supervisor(config).run(stop_event)
"""

from fobs.syslog_agg.monit.config import (
                                     AliveCheck,
                                     CpuCheck,
                                     ExitCheck,
                                     HttpCheck,
                                     HttpConfig,
                                     MemoryCheck,
                                     ProcessConfig,
                                     ProgramConfig,
                                     RestartLimit,
                                     SupervisorConfig,
                                     TcpCheck,
                                     UdpCheck,
                                     load_config,
)
from fobs.syslog_agg.monit.errors import UnknownService
from fobs.syslog_agg.monit.supervisor import Supervisor

__all__ = ["AliveCheck", "CpuCheck", "ExitCheck", "HttpCheck", "HttpConfig", "MemoryCheck",
           "ProcessConfig", "ProgramConfig", "RestartLimit", "Supervisor", "SupervisorConfig",
           "TcpCheck", "UdpCheck", "UnknownService", "load_config"]
