"""A Celery app running subiso graphs: ``celery -A examples.celery_app worker``."""

from examples.celery_app.app import app

__all__ = ["app"]
