"""Cloud Controller varz (cloud_controller_ng) → `cloud_controller`, `cloud_controller_queue`.

`cloud_controller` — no tags:

| field                       | type  | unit | varz                                             |
|-----------------------------|-------|------|--------------------------------------------------|
| requests_outstanding        | float |      | `vcap_sinatra.requests.outstanding`              |
| requests_completed          | int   |      | `vcap_sinatra.requests.completed` (counter)      |
| http_1xx … http_5xx         | int   |      | Σ `vcap_sinatra.http_status` by 1st digit      |
| users                       | float |      | `cc_user_count`                                  |
| thread_count                | float |      | `thread_info.thread_count`                       |
| em_connection_count         | float |      | `thread_info.event_machine.connection_count`     |
| em_threadqueue_size         | float |      | `thread_info.event_machine.threadqueue.size`     |
| em_threadqueue_num_waiting  | float |      | `thread_info.event_machine.threadqueue.num_waiting` |
| em_resultqueue_size         | float |      | `thread_info.event_machine.resultqueue.size`     |
| em_resultqueue_num_waiting  | float |      | `thread_info.event_machine.resultqueue.num_waiting` |

`cloud_controller_queue` — tag `queue` (delayed-job queue name), fields `length` (float, from
`cc_job_queue_length.<queue>`) and `failed_jobs` (int counter, `cc_failed_job_count.<queue>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fobs.collector.handlers.recorder import Fields, Recorder, dig
from fobs.collector.handlers.registry import register

HTTP_FIELDS = tuple(f"http_{digit}xx" for digit in "12345")
MAX_STATUS_CODES = 128
MAX_QUEUES = 32
QUEUE_SIZES = {"size": "size", "num_waiting": "num_waiting"}


@register("CloudController")
def handle(varz: Mapping[str, Any], rec: Recorder) -> None:
    fields: Fields = {}
    sinatra = rec.mapping(varz.get("vcap_sinatra"))
    if sinatra is not None:
        requests = rec.mapping(sinatra.get("requests"))
        if requests is not None:
            rec.gauge(fields, "requests_outstanding", requests.get("outstanding"))
            rec.counter(fields, "requests_completed", requests.get("completed"))
        statuses = rec.tally(sinatra.get("http_status"), _http_class, HTTP_FIELDS,
                             MAX_STATUS_CODES)
        fields.update(statuses or {})
    rec.gauge(fields, "users", varz.get("cc_user_count"))
    threads = rec.mapping(varz.get("thread_info"))
    if threads is not None:
        rec.gauge(fields, "thread_count", threads.get("thread_count"))
        rec.gauge(fields, "em_connection_count", dig(threads, "event_machine", "connection_count"))
        for queue in ("threadqueue", "resultqueue"):
            rec.gauges(fields, dig(threads, "event_machine", queue),
                       {key: f"em_{queue}_{name}" for key, name in QUEUE_SIZES.items()})
    rec.add("cloud_controller", fields)
    _add_queues(varz, rec)


def _http_class(code: Any) -> str | None:
    return f"http_{code[0]}xx" if isinstance(code, str) and len(code) == 3 else None


def _add_queues(varz: Mapping[str, Any], rec: Recorder) -> None:
    queues: dict[str, Fields] = {}
    for source, name, add in (("cc_job_queue_length", "length", rec.gauge),
                              ("cc_failed_job_count", "failed_jobs", rec.counter)):
        for queue, value in rec.items(varz.get(source), MAX_QUEUES):
            tag = rec.tag(queue)
            if tag is not None:
                add(queues.setdefault(tag, {}), name, value)
    for tag, fields in queues.items():
        rec.add("cloud_controller_queue", fields, {"queue": tag})
