"""The durable JSONL shared by the data builder (ledger, records) and the eval prediction cache."""

import json

import pytest

from mmreason.jsonl import AppendLog, append_jsonl, read_jsonl_repair, rewrite_jsonl


def test_append_then_read_round_trip(tmp_path):
    p = tmp_path / "x.jsonl"
    assert append_jsonl(p, [{"b": 1, "a": "é"}]) == 1
    log = AppendLog(p)  # sort_keys by default: a ledger's bytes do not depend on dict order
    assert log.append([{"z": 2, "y": 3}, {"k": [1, 2]}]) == 2
    log.close()
    assert p.read_text(encoding="utf-8").splitlines() == ['{"b": 1, "a": "é"}', '{"y": 3, "z": 2}', '{"k": [1, 2]}']
    assert read_jsonl_repair(p) == ([{"b": 1, "a": "é"}, {"y": 3, "z": 2}, {"k": [1, 2]}], 0)


@pytest.mark.parametrize("corrupt", ["cut", "raise"])
def test_torn_last_line_is_cut_in_both_modes(tmp_path, corrupt):
    p = tmp_path / "x.jsonl"
    for tail in ('{"a": ', '{"a": 3\n', '\xff\n'):
        p.write_bytes(b'{"a": 1}\n\n{"a": 2}\n' + tail.encode("latin-1"))
        assert read_jsonl_repair(p, corrupt=corrupt) == ([{"a": 1}, {"a": 2}], 1), tail
        assert p.read_bytes() == b'{"a": 1}\n\n{"a": 2}\n'
    assert read_jsonl_repair(tmp_path / "missing.jsonl") == ([], 0)


def test_corrupt_middle_line(tmp_path):
    p = tmp_path / "x.jsonl"
    body = '{"a": 1}\nnot json\n{"a": 3}\n{"a": 4'
    p.write_text(body)
    with pytest.raises(ValueError, match=r"x\.jsonl:2: corrupt line"):
        read_jsonl_repair(p, corrupt="raise")
    assert p.read_text() == body  # nothing is cut when the caller asked for an error
    assert read_jsonl_repair(p, corrupt="cut") == ([{"a": 1}], 3)
    assert p.read_text() == '{"a": 1}\n'


def test_rewrite_is_whole(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text("garbage")
    rewrite_jsonl(p, [{"b": 2, "a": 1}])
    assert [json.loads(x) for x in p.read_text().splitlines()] == [{"a": 1, "b": 2}]
    assert not (tmp_path / "x.jsonl.tmp").exists()


def test_input_lines_drop_a_bom_and_read_gzip(tmp_path):
    import gzip

    from mmreason.jsonl import is_jsonl_name, jsonl_lines

    body = b'{"a": 1}\n{"a": 2}\n'
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + body)
    assert [json.loads(x) for x in jsonl_lines(bom)] == [{"a": 1}, {"a": 2}]
    gz = tmp_path / "x.jsonl.gz"
    gz.write_bytes(gzip.compress(b"\xef\xbb\xbf" + body))
    assert [json.loads(x) for x in jsonl_lines(gz)] == [{"a": 1}, {"a": 2}]
    named_plain = tmp_path / "plain.jsonl"  # gzip is known by its bytes, not its name
    named_plain.write_bytes(gzip.compress(body))
    assert len(list(jsonl_lines(named_plain))) == 2
    assert is_jsonl_name(gz) and is_jsonl_name(bom) and not is_jsonl_name(tmp_path / "x.json")


def test_truncated_gzip_is_an_error_naming_the_file(tmp_path):
    import gzip

    from mmreason.jsonl import jsonl_lines

    gz = tmp_path / "cut.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(b'{"a": %d, "pad": "%s"}\n' % (i, b"x" * (i % 7)) for i in range(2000)))[:400])
    with pytest.raises(ValueError, match=r"cut\.jsonl\.gz:\d+: the gzip stream is corrupt or truncated"):
        list(jsonl_lines(gz))
