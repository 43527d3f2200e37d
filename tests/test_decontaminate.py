from dmix_gym.data import build_data
from dmix_gym.data.decontaminate import eval_fingerprint, is_contaminated
from tests.helpers import tiny_spec, write_jsonl, write_tiny_corpus

QUESTION = "Which planet of the solar system has the longest day compared with its own year length?"
ANSWER = "Venus, whose sidereal day is longer than the time it takes to go round the Sun once."


def test_overlap_is_detected_despite_case_and_punctuation():
    fingerprint = eval_fingerprint([(QUESTION, ANSWER)])
    leaked = "Trivia night. " + QUESTION.upper().replace(",", " ;") + " " + ANSWER + " Next question follows."
    assert is_contaminated(leaked, fingerprint)
    assert not is_contaminated("Venus is the second planet from the Sun and the hottest one.", fingerprint)


def test_build_drops_training_documents_that_contain_an_eval_pair(tmp_path):
    data = write_tiny_corpus(tmp_path)
    write_jsonl(data / "eval" / "general.jsonl", [{"question": QUESTION, "answer": ANSWER}])
    records = [{"text": f"Some words about otters number {i} living near the river bank every day.", "domain": "x"} for i in range(40)]
    records.append({"text": "Quiz: " + QUESTION + " " + ANSWER, "domain": "x"})
    write_jsonl(data / "general" / "leak.jsonl", records)
    shards = build_data(tiny_spec(data, name="leaky"), data_dir=data, progress=False)
    assert shards.manifest["fields"]["general"]["decontaminated"] == 1
    assert shards.manifest["fields"]["math"]["decontaminated"] == 0
