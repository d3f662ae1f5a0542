"""One OpenTelemetry SDK tracer provider for the test process, a fixture reading what it recorded, and a
balancer that makes every call fail over.

OpenTelemetry lets a process set its global tracer provider once, so the first test
that asks for :func:`spans` sets one for the rest of the run; its exporter records only
while such a test runs, so later tests do not pile up spans.
"""

from __future__ import annotations

import threading
from typing import Dict, Iterator, List, Optional, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fyerreg import Instance
from fyerreg.discovery.balancer.base import Balancer

__all__ = ["FirstById", "Spans", "spans"]


class _WhileRecording(SpanProcessor):
    """Passes ended spans on only while a test records."""

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner
        self.recording = False

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self.recording:
            self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


_lock = threading.Lock()
_installed: Optional[Spans] = None


class Spans:
    """The spans ended while the current test ran."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.switch = _WhileRecording(SimpleSpanProcessor(self.exporter))
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.switch)
        self.tracer = self.provider.get_tracer("tests")

    def finished(self) -> List[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> List[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]

    def children(self, parent: ReadableSpan) -> List[ReadableSpan]:
        """The spans whose parent is ``parent``, in the order they started."""
        found = [span for span in self.finished()
                 if span.parent is not None and span.parent.span_id == parent.context.span_id]
        return sorted(found, key=lambda span: span.start_time or 0)


def attributes(span: ReadableSpan) -> Dict[str, object]:
    return dict(span.attributes or {})


def ids(span: ReadableSpan) -> Sequence[str]:
    """The trace and span id of ``span`` as hex, as in a ``traceparent`` and in log lines."""
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


@pytest.fixture
def spans() -> Iterator[Spans]:
    global _installed
    with _lock:
        if _installed is None:
            _installed = Spans()
            trace.set_tracer_provider(_installed.provider)
        assert trace.get_tracer_provider() is _installed.provider, "another tracer provider was set first"
        recorder = _installed
    recorder.exporter.clear()
    recorder.switch.recording = True
    try:
        yield recorder
    finally:
        recorder.switch.recording = False
        recorder.exporter.clear()


class FirstById(Balancer):
    """Always the first candidate by id: with a dead ``a-...`` and a live ``b-...`` every call fails over."""

    def update(self, instances: Sequence[Instance]) -> None:
        self._first = sorted(instances, key=lambda inst: inst.id)[0]

    def select(self, key: Optional[str] = None) -> Instance:
        return self._first
