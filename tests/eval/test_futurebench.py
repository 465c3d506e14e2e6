"""FutureBench scoring rules on crafted responses: each quirk of the official lmms-eval task
(extract_characters_regex, extract_thinking_answer_regex, doc_to_text, the per-hop aggregation)
and the labelled corrected mode beside it."""

import json

import pytest

from mmreason.cli import main as cli_main
from mmreason.eval.cli import main as eval_main
from mmreason.eval.futurebench import (
    FutureBenchError,
    build_prompt,
    corrected_letter,
    load_annotations,
    official_letter,
    official_reasoning_letter,
    prompt_for_mode,
    score,
    video_file,
)


def _doc(i, answer, hop):
    return {
        "id": i,
        "video_path": f"/data/V1-33K/video_dataset/cat/v{i}.mp4",
        "question_type": hop,
        "qa": {"Question": f"What happens next {i}?", "Options": {"A": "It falls.", "B": "It rolls.", "C": "It stops.", "D": "It jumps."},
               "Answer": answer},
    }


def test_prompt_is_the_official_doc_to_text():
    doc = _doc(1, "B", "hop1")
    assert build_prompt(doc) == (
        "\nWhat happens next 1?\nA. It falls.\nB. It rolls.\nC. It stops.\nD. It jumps.\n"
        "\nAnswer with the option's letter from the given choices directly."
    )
    # the fallbacks when the yaml has no pre/post prompt keys
    assert build_prompt(doc, None, None).startswith("Select the best answer to the following")
    assert build_prompt(doc, None, None).endswith("D. It jumps.\nThe best answer is:")
    assert prompt_for_mode(doc, "official-reasoning").startswith("You FIRST think about the reasoning process")
    assert prompt_for_mode(doc, "official-reasoning").endswith("D. It jumps.\n")
    assert video_file(doc, "/root/first_part_video").as_posix() == "/root/first_part_video/cat/v1.mp4"


@pytest.mark.parametrize(
    "response, official, corrected",
    [
        ("B", "B", "B"),
        ("The best answer is C", "C", "C"),
        ("The answer is A.", "A", "A"),
        ("The answer: D", "D", "D"),  # "The answer" removed, ": D" left
        ("Best answer: C", "B", "C"),  # missing comma: "Best answer:" is never removed -> the B of "Best"
        ("The correct option is C", "C", "C"),  # never removed either, but holds no capital A-D before C
        ("The best option is D", "D", "D"),
        ("Based on the video, the ball stops: C", "B", "C"),  # the B of "Based"
        ("Answer: B", "A", "B"),  # the A of "Answer"
        ("(c)", "", "C"),  # lower case: official finds no letter
        ("I think C. The best answer is B", "C", "C"),  # replace() anywhere; first letter wins
        ("the best answer is D", "D", "D"),  # lower-case prefix kept in official; no earlier capital
        ("It rolls.", "", "B"),  # option text: corrected matches it
        ("Not sure, the video does not show enough to say what comes next here.", "", ""),  # > 10 words, no A-D
        ("", "", ""),
        (None, "", ""),
    ],
)
def test_letter_extraction(response, official, corrected):
    options = _doc(0, "A", "hop1")["qa"]["Options"]
    assert official_letter(response) == official
    assert corrected_letter(response, options) == corrected


def test_reasoning_extraction():
    assert official_reasoning_letter("<think>x</think><answer>B</answer>") == "B"
    assert official_reasoning_letter("<think>x</think><answer> Based on it, C </answer>") == "B"
    assert official_reasoning_letter("<think>x</think> C") == ""  # no tags: empty
    assert official_reasoning_letter("<answer>\nD\n</answer><answer>A</answer>") == "D"  # the first tag
    assert corrected_letter("<think>A guess</think><answer>Based on it, (C)</answer>") == "C"


def test_score_per_hop_overall_and_missing():
    docs = [_doc(1, "B", "hop1"), _doc(2, "C", "hop1"), _doc(3, "a", "hop2"), _doc(4, "D", "hop3"), _doc(5, "D", "hop5")]
    preds = [
        {"id": 1, "response": "Based on the video, B"},  # official: B (right, by luck); corrected: B
        {"id": 2, "response": "Best answer: C"},  # official: B (wrong); corrected: C
        {"id": 3, "response": "A"},  # gold "a".upper() == "A"
        {"id": 4, "response": "Answer: D"},  # official: A (wrong); corrected: D
        {"id": 99, "response": "A"},  # unknown id: listed, not scored
    ]  # id 5 missing: scored as empty
    s = score(preds, docs, "official")
    assert (s["correct"], s["total"]) == (2, 5) and s["overall"] == pytest.approx(40.0)
    assert s["per_hop"] == {"hop1": 50.0, "hop2": 100.0, "hop3": 0.0, "hop5": 0.0}
    assert s["per_hop_counts"]["hop5"] == {"correct": 0, "total": 1}
    assert s["missing"] == ["5"] and s["extra"] == ["99"]
    assert s["per_item"]["2"] == {"prediction": "B", "answer": "C", "question_type": "hop1", "correct": False}
    assert s["official_log"][0] == "Evaluation on question types: hop1:  50.0%"
    assert s["official_log"][-1] == "Overall Performance:  40.0%"
    c = score(preds, docs, "corrected")
    assert not c["official"] and (c["correct"], c["total"]) == (4, 5)
    assert c["per_hop"] == {"hop1": 100.0, "hop2": 100.0, "hop3": 100.0, "hop5": 0.0}


def test_official_aggregation_rules():
    docs = [_doc(1, "B", "hop1"), _doc(2, "C", "hop2")]
    s = score({"1": "B"}, docs)
    # a hop with no items is logged as 0 by the official task; counts say it is empty
    assert s["per_hop"]["hop3"] == 0 and s["per_hop_counts"]["hop3"] == {"correct": 0, "total": 0}
    assert score({"1": "B", "2": "C"}, [_doc(1, "B", "hop1"), _doc(2, "C", "hop2")])["overall"] == 100.0
    assert score({"1": "B"}, [_doc(1, " B", "hop1")])["correct"] == 0  # the official gold is not stripped
    with pytest.raises(FutureBenchError, match="question_type 'hop4'"):
        score({"1": "B"}, [_doc(1, "B", "hop4")])
    assert score({"1": "B"}, [_doc(1, "B", "hop4")], "corrected")["per_hop"] == {"hop4": 100.0}
    with pytest.raises(FutureBenchError, match="unknown FutureBench mode"):
        score({}, docs, "lenient")


def test_files_and_eval_score_cli(tmp_path):
    """`mmreason eval score --benchmark futurebench` (the plugin) on crafted responses."""
    docs = [_doc(1, "B", "hop1"), _doc(2, "C", "hop2")]
    (tmp_path / "fb.json").write_text(json.dumps(docs))
    (tmp_path / "fb.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    assert load_annotations(tmp_path / "fb.json") == load_annotations(tmp_path / "fb.jsonl") == docs
    (tmp_path / "p.jsonl").write_text('{"id": 1, "response": "B"}\n{"id": "2", "response": "Best answer: C"}\n')
    out = tmp_path / "s" / "scores.json"
    argv = ["eval", "score", "--benchmark", "futurebench", "--predictions", str(tmp_path / "p.jsonl"),
            "--annotations", str(tmp_path / "fb.json"), "--output", str(out)]
    assert cli_main(argv) == 0
    s = json.loads(out.read_text())
    assert s["overall"] == 50.0 and s["per_hop"]["hop1"] == 100.0 and s["per_item"]["2"]["prediction"] == "B"
    assert (s["total"], s["correct"], s["mode"]) == (2, 1, "official")
    assert "| hop1 | 100" in (out.parent / "report.md").read_text()
    assert cli_main(argv + ["--mode", "corrected"]) == 0 and json.loads(out.read_text())["overall"] == 100.0
    assert cli_main(argv[:-4] + ["--annotations", str(tmp_path / "fb.jsonl"), "--output", str(out)]) == 0
    bad = dict(docs[0])
    del bad["qa"]
    (tmp_path / "bad.jsonl").write_text(json.dumps(docs[1]) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(FutureBenchError, match=r"bad\.jsonl:2: missing field 'qa'"):
        load_annotations(tmp_path / "bad.jsonl")
    with pytest.raises(FutureBenchError, match=r"bad\.jsonl:2: missing field 'qa'"):
        eval_main(argv[1:-4] + ["--annotations", str(tmp_path / "bad.jsonl"), "--output", str(out)])
