"""The engine-vs-model table reports the engine's own spread over its repeats beside the model's ratio."""

from __future__ import annotations

from dsalab.model import calibrate_check as check


def _row(model_host: float, host_range: tuple[float, float], model_time: float, time_range: tuple[float, float]):
    return check.Row(
        "cpu-native", 0.5, 1, 512 << 10,
        engine_host_cpu_ms=sum(host_range) / 2, model_host_cpu_ms=model_host,
        engine_time_ms=sum(time_range) / 2, engine_setup_ms=1.0, model_time_ms=model_time,
        engine_sender_cpu_ms=1.0, model_sender_cpu_ms=1.0, engine_receiver_cpu_ms=1.0, model_receiver_cpu_ms=1.0,
        repeats=3, engine_host_cpu_range=host_range, engine_time_range=time_range,
    )  # fmt: skip


def test_spread_and_range():
    inside = _row(150.0, (100.0, 200.0), 90.0, (100.0, 120.0))
    assert inside.spread("host") == 2.0 and inside.spread("time") == 1.2
    assert inside.in_range("host") and not inside.in_range("time")
    outside = _row(250.0, (100.0, 200.0), 110.0, (100.0, 120.0))
    assert check.in_engine_range([inside, outside], "host") == 1
    assert check.in_engine_range([inside, outside], "time") == 1
    text = check.format_rows([inside, outside])
    assert "1/2 inside the engine's own range" in text and "2.00 at the worst" in text
