"""The example Celery app: Redis as broker and result backend, JSON only, subiso's task.

Start a worker from this directory (it reads ``subiso.toml`` here)::

    cd examples/celery_app && PYTHONPATH=../.. celery -A examples.celery_app worker -P prefork -c 2

``SUBISO_BROKER`` / ``SUBISO_BACKEND`` override the Redis URLs.
"""

from __future__ import annotations

import os

from celery import Celery

import subiso.celery

BROKER = os.environ.get("SUBISO_BROKER", "redis://127.0.0.1:6379/0")
BACKEND = os.environ.get("SUBISO_BACKEND", BROKER)

app = Celery("subiso_example", broker=BROKER, backend=BACKEND)
app.conf.update(
    # Payloads and results as JSON, never pickle: a broker is a trust boundary.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    # One task at a time per child: runs are long; a killed child loses only its own task,
    # which goes back to the queue (the task is acks_late + reject_on_worker_lost).
    worker_prefetch_multiplier=1,
    result_extended=True,
    broker_connection_retry_on_startup=True,
)
subiso.celery.install(app)
