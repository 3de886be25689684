"""The in-process stack the call counts run on: the handlers imported with their
template environment, against an embedded moto server provisioned from template.yaml by
the devserver's own code (what tests/integration/conftest.py's `stack` fixture does)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from moto.server import ThreadedMotoServer

from bench import ROOT
from devserver.moto_fidelity import make_dynamodb_writes_atomic
from devserver.provision import provision
from devserver.template import Template
from devserver.workers import moto_client_environment
from tests.integration.conftest import Stack


@contextmanager
def local_stack() -> Iterator[Stack]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    make_dynamodb_writes_atomic()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        moto_url = f"http://{host}:{port}"
        with pytest.MonkeyPatch.context() as patch:
            for key, value in {
                **moto_client_environment(moto_url),
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            }.items():
                patch.setenv(key, value)
            template = Template(ROOT / "template.yaml")
            template.moto_url = moto_url
            resources = provision(template, moto_url)
            functions = {f.logical_id: f for f in template.functions()}
            yield Stack(template, functions, moto_url, resources)
    finally:
        server.stop()
