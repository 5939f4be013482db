import socket

import pytest

from ilm_site.celery import app


@pytest.mark.django_db(transaction=True)
def test_worker_answers_ping(celery_worker):
    node = f"{celery_worker.name}@{socket.gethostname()}"
    replies = app.control.ping(destination=[node], timeout=5)
    assert replies and node in replies[0]
