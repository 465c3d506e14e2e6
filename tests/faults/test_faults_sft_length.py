"""An SFT record over max_length (issue 25, item 3): tokenised as the collator will (text + vision tokens), it is a
file:line error naming the record (strict) or dropped and counted with its id (lenient) before training — never cut
through image tokens (a crash mid-run), never a silently truncated target."""

from __future__ import annotations

import json

import pytest

from mmreason.errors import RecordError


def test_record_over_max_length(tiny_model_dir, tmp_path, fault_log):
    from faults_corpus import make_images, good

    from mmreason.modeling import ModelLoad, load_processor
    from mmreason.sft.dataset import DataReport, build_sft_dataset, drop_over_max_length, load_sft_records
    from mmreason.sft.run import make_parser, token_counter

    make_images(tmp_path)
    rows = [good(0), good(1, id="long", solution="One dot, counted carefully. " * 30 + "\\boxed{1}"), good(2)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s, t, m, _ = make_parser().parse_args_and_config(["--model_name_or_path", str(tiny_model_dir), "--train_files",
                                                      str(path), "--output_dir", str(tmp_path / "o")])
    count = token_counter(load_processor(ModelLoad.from_trl(m, False, None), None, None), t, None)
    recs, report = load_sft_records([str(path)])
    ds = build_sft_dataset(recs, report=report)
    lengths = [count(ds[i]) for i in range(len(ds))]
    limit = max(lengths[0], lengths[2])
    assert lengths[1] > limit and lengths[0] > 64  # the image tokens are in the count
    with pytest.raises(RecordError, match=rf"train\.jsonl:2: record 'long' is {lengths[1]} tokens"):
        drop_over_max_length(ds, count, limit, False, report)
    kept = drop_over_max_length(ds, count, limit, True, report)
    assert len(kept) == 2 and report.dropped_tokens == [{"id": "long", "where": f"{path}:2", "tokens": lengths[1]}]
    assert report.loaded == 2 and "1 dropped over max_length" in report.summary()
    fault_log.record("sft", "record over max_length (text + vision tokens)", "error (strict) / dropped, counted")
