"""Fixtures of the worker tests: the local site and the test Scrapy project."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.worker import site

PROJECT = Path(__file__).parent / "project"


@pytest.fixture(scope="session")
def site_url() -> Iterator[str]:
    with site.serve() as url:
        yield url


@pytest.fixture
def project_dir() -> Path:
    """The test Scrapy project. Its `testproject-1.0.dist-info` plays the part of the
    project's egg on Scrapy Cloud: the `scrapy` entry point `settings`, and the scripts
    that script jobs (`job_cmd`) run."""
    return PROJECT
