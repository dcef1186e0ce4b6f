"""Zero-shot yes / no / maybe with each question's whole abstract, under two instructions (decision-prompt.md).

    python docs/experiments/decision_prompt_experiment.py QUESTIONS.json 60 --out /tmp/decision-prompt.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from medrag.config import load_config
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.datasets.splits import DEFAULT_SPLIT
from medrag.generate.decision import DECIDE_SYSTEM, LABELS, OPTIONS
from medrag.generate.evidence import quoted_evidence
from medrag.generate.prompt import SYSTEM, user_turn
from medrag.lm.load import load_language_model
from medrag.text.sentences import split_sentences
from training.decision import zero_shot_probabilities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("questions", type=Path, help="any labelled PubMedQA-format JSON")
    parser.add_argument("count", type=int, help="questions from the split's train + validation parts")
    parser.add_argument("--out", type=Path, default=Path("decision-prompt.json"))
    args = parser.parse_args()
    model = load_language_model(None, load_config().cache_dir)
    train, validation, _ = DEFAULT_SPLIT.divide(read_pubmedqa(args.questions, require_decision=True))
    records = (train + validation)[: args.count]
    labels = [record.final_decision for record in records]
    results: dict[str, object] = {"majority": max(labels.count(label) for label in LABELS) / len(labels)}
    for name, system in (("answer SYSTEM", SYSTEM), ("decision-specific", DECIDE_SYSTEM)):
        started, scores = time.time(), []
        for record in records:
            sentences = [s for context in record.contexts for s in split_sentences(context)]
            evidence = quoted_evidence("PubmedArticle", record.pmid, sentences)
            prompt = model.prompt(system, user_turn(record.question, "", evidence, model.sanitize, decide=True))
            scores.append(model.option_log_probabilities(prompt, OPTIONS))
        relative = np.log(zero_shot_probabilities(np.array(scores)))
        predicted = [LABELS[index] for index in relative.argmax(1)]
        decided = [i for i, label in enumerate(labels) if label != "maybe"]
        results[name] = {
            "zero_shot_accuracy": float(np.mean([p == g for p, g in zip(predicted, labels, strict=True)])),
            "auroc_yes_vs_no": float(roc_auc_score([labels[i] == "yes" for i in decided],
                                                   relative[decided, 0] - relative[decided, 1])),
            "predicted": {label: predicted.count(label) for label in LABELS},
            "seconds_per_question": (time.time() - started) / len(records)}
        print(name, results[name], flush=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
