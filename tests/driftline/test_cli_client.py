"""`driftline models` and `driftline alerts`: the on-call commands, against a real serve stack."""

from __future__ import annotations

import json

import pandas as pd
from support.serve import free_port, running_api
from support.stream_data import predictions, reference

from driftline import Publisher
from driftline.cli import main


def test_register_publish_then_ack_and_resolve_from_the_cli(
    tmp_path, chdb_client, ch_database, capsys
) -> None:
    ref = reference()
    csv = tmp_path / "train.csv"
    pd.DataFrame({**ref, "pred": (ref["age"] > 40).astype(float)}).to_csv(csv, index=False)
    with running_api(tmp_path / "data", chdb_client, ch_database, allowed_lateness_seconds=0) as (
        url,
        runtime,
    ):
        args = ["--url", url]
        code = main(
            [
                "models",
                "register",
                "--name",
                "churn",
                "--version",
                "1",
                "--reference",
                str(csv),
                "--prediction-column",
                "pred",
                *args,
            ]
        )
        out = capsys.readouterr().out
        assert code == 0 and "registered churn version 1: 3 features + prediction" in out
        assert "processed" in out

        with Publisher(url, batch_size=500) as pub:
            for e in predictions(5, 300, drift_from=2):
                pub.predict(
                    "churn",
                    "1",
                    e["features"],
                    e["prediction"],
                    prediction_id=e["prediction_id"],
                    timestamp=e["timestamp"],
                )
            pub.flush(wait=True)
        runtime.drain()  # the API's wait has a timeout; make sure every window has been processed

        assert main(["models", "list", *args]) == 0
        assert "churn" in capsys.readouterr().out

        assert main(["alerts", "list", "--state", "open", "--json", *args]) == 0
        alerts = json.loads(capsys.readouterr().out)
        assert alerts and all(a["state"] == "open" for a in alerts)
        first = alerts[0]["alert_id"]

        assert main(["alerts", "ack", first, "--note", "looking", *args]) == 0
        assert f"alert {first} is acknowledged" in capsys.readouterr().out
        assert main(["alerts", "ack", first, *args]) == 2  # already acknowledged: 409
        assert "409" in capsys.readouterr().err
        assert main(["alerts", "resolve", first, *args]) == 0
        assert "is resolved" in capsys.readouterr().out
        stored = runtime.store.alert(first)
        assert stored["state"] == "resolved" and stored["note"] == "looking"


def test_unreachable_server_is_one_clear_line(capsys) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["alerts", "list", "--url", url]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("driftline: error: cannot reach driftline serve at")
        and len(err.splitlines()) == 1
    )


def test_register_with_an_absent_prediction_column_exits_2(tmp_path, capsys) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("x,y\n1,2\n3,4\n")
    code = main(
        [
            "models",
            "register",
            "--name",
            "m",
            "--version",
            "1",
            "--reference",
            str(csv),
            "--prediction-column",
            "score",
            "--url",
            "http://127.0.0.1:9",
        ]
    )
    assert code == 2 and "column 'score' is not in" in capsys.readouterr().err
