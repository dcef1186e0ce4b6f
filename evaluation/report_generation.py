"""Draft impressions from the indication, scored against the radiologist's impression: ``medrag eval report``.

For every study of a test split of IU / Open-i chest X-ray reports, each method writes an IMPRESSION from the
study's INDICATION alone (the clinical question; no image and no findings), and the draft is scored against the
real impression. The methods are the baselines any report generator must beat:

- ``normal template``: one fixed normal impression for every study. Most IU studies are normal, so this is the
  floor that n-gram metrics flatter; a method that does not beat it has learnt nothing about the study.
- ``retrieval (nearest study)``: the impression of the train study whose indication is nearest by cosine of the
  project's text encoder (all-MiniLM-L6-v2 unless configured otherwise), as CXR-RePaiR copies the nearest report
  (it searches with the image; here the indication is the only input). The study itself is never a candidate.
- ``retrieval (top-3 vote)``: of the three nearest train studies, the impression that agrees most with the other
  two (highest mean cosine of the impressions' embeddings): a consensus that drops an odd nearest neighbour, in the
  spirit of X-REM's reranking of retrieved reports, at the cost of three look-ups.

- ``retrieval + MBR consensus``: minimum-Bayes-risk selection among the k nearest train studies' impressions: the
  one with the highest summed ROUGE-L against the other k - 1 (the expected score of a draft, with the neighbours'
  impressions as samples of what this study's impression might be). k is tuned on the ``val`` split (mean ROUGE-L
  against the val studies' own impressions, the train split as pool), never on the test split, and recorded.

No language model writes here: the reader takes seconds per draft on these CPUs (about 25 minutes for the test
split), and from the indication alone it would have nothing to write but what the neighbours say.

Scores: BLEU-1..4, ROUGE-L, METEOR and CIDEr (CIDEr-D) through ``pycocoevalcap`` after its PTB tokenizer, as the
captioning and R2Gen papers compute them (BLEU and CIDEr are corpus-level; ROUGE-L and METEOR are means of the
per-study scores, so they get :func:`medrag.metrics.bootstrap_interval`); and finding-level precision / recall / F1
over the 14 CheXpert observations, labelled by :mod:`evaluation.chexpert_labeler` on both the draft and the
reference. Corpus-level metrics get percentile-bootstrap intervals from recomputing them on resampled studies (the
same seeded resamples for every method). The labeller's own agreement with a CheXpert-labelled CSV is reported
beside, so a finding-level difference can be weighed against the labeller's error.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
from tqdm import tqdm

from evaluation.chexpert_labeler import (
    NO_FINDING,
    POSITIVE,
    UNCERTAIN,
    Label,
    agreement,
    load_labeller,
    mesh_agreement,
)
from evaluation.inputs import sha256
from knowledge_sources.records import SourceRecord
from knowledge_sources.reports import load_reports
from medrag.datasets.iu_reports import IUReport, read_iu_reports
from medrag.encode.text import TextEncoder
from medrag.metrics import bootstrap_interval
from medrag.reporting import pyplot, save_figure, write_json_and_markdown

NORMAL_TEMPLATE = "No acute cardiopulmonary abnormality."
TEST_SPLIT, POOL_SPLIT = "test", "train"
TUNE_SPLIT = "val"
VOTE_K = 3
MBR_KS = (5, 10, 20, 40)
"""Neighbour counts the MBR consensus is tuned over on the val split."""
MBR_DEFAULT_K = 20
"""k when the split file has no usable val split (recorded as untuned)."""
METHODS = ("normal template", "retrieval (nearest study)", f"retrieval (top-{VOTE_K} vote)",
           "retrieval + MBR consensus")
NGRAM_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "meteor", "cider")
FINDING_METRICS = ("finding_precision_micro", "finding_recall_micro", "finding_f1_micro", "finding_f1_macro")
HEADLINE = NGRAM_METRICS + FINDING_METRICS
NOT_COMPUTED = ("CheXbert F1, RadGraph F1, SPICE: not computed offline (they need weights/Stanford CoreNLP models "
                "we cannot load)")
_CXR_NUMBER = re.compile(r"^\s*(?:CXR)?0*(\d+)(?=$|[_\-.\s])", re.IGNORECASE)


# --- inputs ----------------------------------------------------------------------------------------------------------

def study_key(identifier: str) -> str | None:
    """The IU study an id names, as the XML's ``uId`` spells it: "CXR2384_IM-0942", "CXR2384_IM-0942-1001.png",
    "2384" and "CXR2384" all -> "CXR2384". The R2Gen annotation uses the first form or the bare number, the XML
    and CSV readers the last; the CXR number is what they share."""
    match = _CXR_NUMBER.match(identifier or "")
    return f"CXR{int(match.group(1))}" if match else None


def _item_keys(item: Mapping[str, Any]) -> list[str]:
    """Candidate study keys of a split item: its ``id``, then each ``image_path`` (whose file names carry it too)."""
    images = item.get("image_path") or []
    names = [str(item.get("id", ""))] + [Path(str(path)).name for path in
                                         (images if isinstance(images, list) else [images])]
    return [key for name in names if (key := study_key(name))]


def read_split(split_file: Path, reports: Mapping[str, IUReport]) -> dict[str, list[IUReport]]:
    """The reports of each split of an R2Gen-format annotation file ({"train": [...], "test": [...]}, items with
    "id" and "image_path"), matched to the XML reports by study number; items with no report are left out."""
    try:
        data = json.loads(split_file.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{split_file}: not a readable JSON split file ({error})") from error
    missing = [name for name in (TEST_SPLIT, POOL_SPLIT) if not isinstance(data, dict)
               or not isinstance(data.get(name), list)]
    if missing:
        raise ValueError(f"{split_file}: needs the lists {', '.join(map(repr, missing))} of an R2Gen annotation file "
                         '({"train": [{"id": ..., "image_path": [...]}, ...], "val": [...], "test": [...]})')
    splits: dict[str, list[IUReport]] = {}
    for name, items in data.items():
        if not isinstance(items, list):
            continue
        matched = []
        for item in items:
            key = next((key for key in _item_keys(item) if key in reports), None) if isinstance(item, dict) else None
            if key:
                matched.append(reports[key])
        if items and not matched:
            example = items[0].get("id") if isinstance(items[0], dict) else items[0]
            raise ValueError(f"{split_file}: no item of split {name!r} maps to a report: field 'id' (e.g. {example!r}) "
                             f"and 'image_path' give no CXR number among the {len(reports)} reports read (e.g. "
                             f"{next(iter(reports), 'none')!r}); pass the report files this split was made from")
        splits[name] = matched
    return splits


def mapping_check(split_file: Path, reports: Mapping[str, IUReport], split: str = TEST_SPLIT) -> dict[str, int]:
    """How many items of a split carry report text (the R2Gen ``report`` field) that contains the start of the
    impression of the report their id mapped to: evidence that ids map to the right reports, not just to some."""
    items = [item for item in json.loads(split_file.read_text()).get(split, []) if isinstance(item, dict)]
    checked = found = 0
    for item in items:
        key = next((key for key in _item_keys(item) if key in reports), None)
        impression = " ".join(reports[key].impression.split())[:40] if key else ""
        if impression and isinstance(item.get("report"), str):
            checked += 1
            found += impression in " ".join(item["report"].split())
    return {"items_with_report_text": checked, "impression_found": found}


def _text_ok(text: str) -> bool:
    """Whether a section has words to read or score ("." or an empty tag does not)."""
    return bool(re.search(r"[A-Za-z]", text or ""))


# --- methods ---------------------------------------------------------------------------------------------------------

def nearest_studies(query: np.ndarray, pool: np.ndarray, query_keys: Sequence[str], pool_keys: Sequence[str],
                    k: int) -> list[list[int]]:
    """Per query, the indices of the (up to) ``k`` most similar pool rows by dot product (vectors are
    unit-normalised), never the query's own study: a study that sits in both lists cannot copy its own impression."""
    similarity = query @ pool.T
    own = np.asarray(query_keys)[:, None] == np.asarray(pool_keys)[None, :]
    similarity[own] = -np.inf
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    nearest = [[int(i) for i in row if np.isfinite(similarity[q, i])] for q, row in enumerate(order)]
    if lonely := [query_keys[q] for q, row in enumerate(nearest) if not row]:
        raise ValueError(f"the retrieval pool holds no study other than {lonely[0]} itself; give the pool split more "
                         "studies")
    return nearest


def consensus(candidates: Sequence[int], impression_vectors: Mapping[int, np.ndarray]) -> int:
    """The candidate whose impression has the highest mean cosine to the others' (ties: the nearer study)."""
    if len(candidates) < 3:
        return candidates[0]
    vectors = np.stack([impression_vectors[c] for c in candidates])
    agreement_with_others = ((vectors @ vectors.T).sum(axis=1) - 1.0) / (len(candidates) - 1)
    return candidates[int(np.argmax(agreement_with_others))]


def _words(text: str) -> str:
    """Lower-case word tokens joined by spaces: the MBR utility's tokenization (the java PTB tokenizer is kept for
    scoring; the utility only ranks candidates against each other)."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


class MBRConsensus:
    """Minimum-Bayes-risk choice among retrieved impressions with ROUGE-L (pycocoevalcap's) as the utility.

    Written here because it is ours: selecting the candidate that maximises the expected metric against the other
    candidates is what MBR decoding does with sampled hypotheses; the retrieved neighbours play the samples. Pairwise
    utilities are cached per pool pair, so tuning k and scoring the test split share them."""

    def __init__(self, impressions: Sequence[str]) -> None:
        self._tokens = [_words(text) for text in impressions]
        self._rouge = Rouge()
        self._utility: dict[tuple[int, int], float] = {}

    def utility(self, a: int, b: int) -> float:
        key = (a, b) if a < b else (b, a)  # ROUGE-L F with beta 1.2 is not symmetric; one order is used for both
        if key not in self._utility:
            self._utility[key] = float(self._rouge.calc_score([self._tokens[key[0]]], [self._tokens[key[1]]]))
        return self._utility[key]

    def choose(self, candidates: Sequence[int]) -> int:
        """The candidate with the highest summed utility against the others (ties: the nearer study)."""
        if len(candidates) < 3:
            return candidates[0]
        totals = [sum(self.utility(c, other) for other in candidates if other != c) for c in candidates]
        return candidates[int(np.argmax(totals))]

    def tune(self, neighbours: Sequence[Sequence[int]], references: Sequence[str], ks: Sequence[int],
             progress: bool) -> dict[str, Any]:
        """The k of ``ks`` whose choices score the highest mean ROUGE-L against ``references`` (the val split)."""
        rouge, targets = Rouge(), [_words(text) for text in references]
        by_k = {}
        for k in tqdm(ks, desc="tuning MBR k on val", unit="k", disable=not progress):
            chosen = [self.choose(row[:k]) for row in neighbours]
            by_k[k] = float(np.mean([rouge.calc_score([self._tokens[c]], [target])
                                     for c, target in zip(chosen, targets, strict=True)]))
        return {"k": max(by_k, key=by_k.__getitem__), "val_rouge_l_by_k": by_k, "val_studies": len(references),
                "tuned_on": TUNE_SPLIT}


# --- scores ----------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _child_stderr_captured() -> Iterator[None]:
    """The java tokenizer inherits this process's stderr and reports its speed there ("PTBTokenizer tokenized
    ... tokens"): file descriptor 2 goes to a temporary file for the call, shown only if the call fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def tokenize(texts: Mapping[str, str]) -> dict[str, str]:
    """pycocoevalcap's PTB tokenizer (Stanford CoreNLP, run in java): lower case, punctuation removed."""
    with contextlib.redirect_stdout(io.StringIO()), _child_stderr_captured():
        tokenized = PTBTokenizer().tokenize({key: [{"caption": text}] for key, text in texts.items()})
    return {key: value[0] for key, value in tokenized.items()}


@contextlib.contextmanager
def meteor_scorer() -> Iterator[Meteor]:
    """pycocoevalcap's METEOR scorer, one JVM for every method; on exit its java process is ended and its pipes
    are closed (its own ``__del__`` leaves stdout and stderr open, which Python reports as a ResourceWarning)."""
    scorer = Meteor()
    try:
        yield scorer
    finally:
        process = scorer.meteor_p
        process.stdin.close()
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()


def corpus_ngram_scores(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU-1..4 and CIDEr-D of tokenized texts (pycocoevalcap; its progress prints are swallowed)."""
    gts = {str(i): [text] for i, text in enumerate(references)}
    res = {str(i): [text] for i, text in enumerate(hypotheses)}
    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
    return {**{f"bleu_{n + 1}": float(value) for n, value in enumerate(bleu)}, "cider": float(cider)}


def per_study_scores(references: Sequence[str], hypotheses: Sequence[str], meteor_scorer: Meteor) -> dict[str, Any]:
    """ROUGE-L and METEOR per study, and the METEOR jar's own corpus aggregate (kept for comparison with papers that
    report it; the headline METEOR is the per-study mean so that its interval is the mean's). ``meteor_scorer``: one
    ``Meteor`` for all methods, so the jar's JVM starts once."""
    gts = {str(i): [text] for i, text in enumerate(references)}
    res = {str(i): [text] for i, text in enumerate(hypotheses)}
    _, rouge = Rouge().compute_score(gts, res)
    meteor_corpus, meteor = meteor_scorer.compute_score(gts, res)
    return {"rouge_l": [float(value) for value in rouge], "meteor": [float(value) for value in meteor],
            "meteor_corpus": float(meteor_corpus)}


def finding_scores(references: Sequence[Mapping[str, Label]], generated: Sequence[Mapping[str, Label]],
                   observations: Sequence[str], *, uncertain_positive: bool = False) -> dict[str, Any]:
    """Finding-level precision, recall and F1: micro (pooled over studies x observations) and macro (mean of the
    per-observation F1 over observations positive in a reference or a draft; others have no F1). Positive is label
    1; uncertain (-1) counts as not positive unless ``uncertain_positive``."""
    positive = {POSITIVE, UNCERTAIN} if uncertain_positive else {POSITIVE}
    truth = np.array([[ref[name] in positive for name in observations] for ref in references], dtype=bool)
    guess = np.array([[gen[name] in positive for name in observations] for gen in generated], dtype=bool)
    truth = truth.reshape(len(references), len(observations))
    guess = guess.reshape(len(generated), len(observations))
    true_positive = (truth & guess).sum(axis=0)
    predicted, actual = guess.sum(axis=0), truth.sum(axis=0)
    per_f1 = {name: float(2 * tp / (p + a)) for name, tp, p, a in zip(observations, true_positive, predicted,
                                                                        actual, strict=True) if p + a}
    tp_all, p_all, a_all = int(true_positive.sum()), int(predicted.sum()), int(actual.sum())
    nan = float("nan")
    return {"finding_precision_micro": tp_all / p_all if p_all else nan,
            "finding_recall_micro": tp_all / a_all if a_all else nan,
            "finding_f1_micro": 2 * tp_all / (p_all + a_all) if p_all + a_all else nan,
            "finding_f1_macro": float(np.mean(list(per_f1.values()))) if per_f1 else nan,
            "per_observation_f1": per_f1}


def _corpus_metrics(references: Sequence[str], hypotheses: Sequence[str], reference_labels: Sequence[Mapping],
                    draft_labels: Sequence[Mapping], observations: Sequence[str]) -> dict[str, float]:
    """The corpus-level headline metrics of one method on one (re)sample of studies."""
    findings = finding_scores(reference_labels, draft_labels, observations)
    return {**corpus_ngram_scores(references, hypotheses),
            **{name: findings[name] for name in FINDING_METRICS}}


def bootstrap_corpus(references: Sequence[str], drafts: Mapping[str, Sequence[str]],
                     reference_labels: Sequence[Mapping], draft_labels: Mapping[str, Sequence[Mapping]],
                     observations: Sequence[str], *, resamples: int, seed: int,
                     progress: bool) -> dict[str, dict[str, list[float]]]:
    """Percentile 95% intervals of the corpus-level metrics per method, recomputed on ``resamples`` resamples of the
    studies (with replacement; the same resamples for every method, so methods are compared on the same draws)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(references), size=(resamples, len(references)))
    values: dict[str, dict[str, list[float]]] = {method: {name: [] for name in NGRAM_METRICS + FINDING_METRICS
                                                          if name not in ("rouge_l", "meteor")} for method in drafts}
    for draw in tqdm(draws, desc="bootstrap", unit="resample", disable=not progress):
        chosen_refs = [references[i] for i in draw]
        chosen_ref_labels = [reference_labels[i] for i in draw]
        for method, hypotheses in drafts.items():
            scores = _corpus_metrics(chosen_refs, [hypotheses[i] for i in draw], chosen_ref_labels,
                                     [draft_labels[method][i] for i in draw], observations)
            for name, series in values[method].items():
                series.append(scores[name])
    return {method: {name: [float(np.nanpercentile(series, 2.5)), float(np.nanpercentile(series, 97.5))]
                     for name, series in metrics.items()} for method, metrics in values.items()}


# --- the suite -------------------------------------------------------------------------------------------------------

def evaluate_report_generation(reports: Sequence[Path], split_file: Path, labeller_dir: Path, *,
                               encoder: TextEncoder | None = None, labelled_csv: Path | None = None,
                               count: int | None = None, resamples: int = 200, seed: int = 0,
                               out_dir: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Score the three baselines' impressions on the ``test`` split of ``split_file`` against the real impressions.

    ``reports``: IU report files or folders (ecgen XML, the NLMCXR tarball or the CSV export); ``split_file``: an
    R2Gen annotation JSON whose ids name those reports; ``labeller_dir``: a CheXpert-labeler folder (phrases/,
    patterns/); ``labelled_csv``: gold labels to validate the labeller on (default: ``labeled_reports.csv`` in that
    folder, skipped when absent); ``encoder``: the text encoder of the retrieval (default: all-MiniLM-L6-v2);
    ``count``: only the first ``count`` test studies (a smoke run); ``resamples``: bootstrap resamples of the
    corpus-level metrics. Writes ``report.json``, ``report.md`` and ``report.png`` to ``out_dir`` when given.
    """
    started = time.perf_counter()
    labeller = load_labeller(Path(labeller_dir))
    by_key = {key: report for report in read_iu_reports(reports) if (key := study_key(report.report_id))}
    if not by_key:
        raise ValueError(f"no readable report with a CXR study id in {', '.join(map(str, reports))}; pass the IU "
                         "ecgen XML files, NLMCXR_reports.tgz or indiana_reports.csv")
    splits = read_split(split_file, by_key)
    usable = {name: [r for r in items if _text_ok(r.indication) and _text_ok(r.impression)]
              for name, items in splits.items()}
    studies = usable[TEST_SPLIT][:count] if count is not None else usable[TEST_SPLIT]
    pool = usable[POOL_SPLIT]
    if not studies or not pool:
        raise ValueError(f"{split_file}: the {TEST_SPLIT!r} split has {len(studies)} and the {POOL_SPLIT!r} split "
                         f"{len(pool)} studies with both an indication and an impression; both must have some")

    encoder = encoder or TextEncoder()
    pool_vectors = encoder.encode([s.indication for s in pool], progress=progress)
    pool_keys = [study_key(s.report_id) or "" for s in pool]

    def neighbours_of(queries: Sequence[IUReport], k: int) -> list[list[int]]:
        return nearest_studies(encoder.encode([s.indication for s in queries]), pool_vectors,
                               [study_key(s.report_id) or "" for s in queries], pool_keys, k)

    mbr = MBRConsensus([s.impression for s in pool])
    tuning = usable.get(TUNE_SPLIT, [])[:count] if count is not None else usable.get(TUNE_SPLIT, [])
    mbr_setting = (mbr.tune(neighbours_of(tuning, max(MBR_KS)), [s.impression for s in tuning], MBR_KS, progress)
                   if tuning else {"k": MBR_DEFAULT_K, "tuned_on": f"not tuned: no usable {TUNE_SPLIT!r} split"})
    neighbours = neighbours_of(studies, max(VOTE_K, mbr_setting["k"]))
    candidates = sorted({i for row in neighbours for i in row[:VOTE_K]})
    impression_vectors = dict(zip(candidates, encoder.encode([pool[i].impression for i in candidates]), strict=True))
    voted = [consensus(row[:VOTE_K], impression_vectors) for row in neighbours]
    mbr_chosen = [mbr.choose(row[:mbr_setting["k"]]) for row in neighbours]
    sources: dict[str, list[str | None]] = {
        METHODS[0]: [None] * len(studies),
        METHODS[1]: [pool[row[0]].report_id for row in neighbours],
        METHODS[2]: [pool[i].report_id for i in voted],
        METHODS[3]: [pool[i].report_id for i in mbr_chosen]}
    drafts = {METHODS[0]: [NORMAL_TEMPLATE] * len(studies),
              METHODS[1]: [pool[row[0]].impression for row in neighbours],
              METHODS[2]: [pool[i].impression for i in voted],
              METHODS[3]: [pool[i].impression for i in mbr_chosen]}

    references = [s.impression for s in studies]
    texts = {f"ref{i}": text for i, text in enumerate(references)}
    texts |= {f"{m}{i}": text for m, method in enumerate(METHODS) for i, text in enumerate(drafts[method])}
    tokens = tokenize(texts)
    reference_tokens = [tokens[f"ref{i}"] for i in range(len(studies))]
    draft_tokens = {method: [tokens[f"{m}{i}"] for i in range(len(studies))] for m, method in enumerate(METHODS)}

    label = functools.cache(labeller.label)
    reference_labels = [label(text) for text in tqdm(references, desc="labelling", unit="report",
                                                     disable=not progress)]
    draft_labels = {method: [label(text) for text in drafts[method]] for method in METHODS}
    observations = labeller.observations

    intervals = bootstrap_corpus(reference_tokens, draft_tokens, reference_labels, draft_labels, observations,
                                 resamples=resamples, seed=seed, progress=progress)
    results: dict[str, Any] = {}
    with meteor_scorer() as meteor:
        per_study_by_method = {method: per_study_scores(reference_tokens, draft_tokens[method], meteor)
                               for method in METHODS}
    for method in tqdm(METHODS, desc="scoring", unit="method", disable=not progress):
        corpus = _corpus_metrics(reference_tokens, draft_tokens[method], reference_labels, draft_labels[method],
                                 observations)
        per_study = per_study_by_method[method]
        findings = finding_scores(reference_labels, draft_labels[method], observations)
        lenient = finding_scores(reference_labels, draft_labels[method], observations, uncertain_positive=True)
        abnormal = finding_scores(reference_labels, draft_labels[method],
                                  [name for name in observations if name != NO_FINDING])
        metrics = {**corpus, "rouge_l": float(np.mean(per_study["rouge_l"])),
                   "meteor": float(np.mean(per_study["meteor"]))}
        ci = {**intervals[method], "rouge_l": bootstrap_interval(per_study["rouge_l"], seed=seed),
              "meteor": bootstrap_interval(per_study["meteor"], seed=seed)}
        results[method] = {
            "metrics": {name: metrics[name] for name in HEADLINE},
            "ci95": {name: ci[name] for name in HEADLINE},
            "meteor_corpus": per_study["meteor_corpus"],
            "finding_f1_per_observation": findings["per_observation_f1"],
            "uncertain_as_positive": {name: lenient[name] for name in FINDING_METRICS},
            "without_no_finding": {name: abnormal[name] for name in FINDING_METRICS},
            "distinct_drafts": len(set(drafts[method])),
            "rouge_l_gain_over_template": _paired_gain(per_study["rouge_l"], per_study_by_method[METHODS[0]]["rouge_l"],
                                                       seed),
            "per_study": {"rouge_l": [round(v, 4) for v in per_study["rouge_l"]],
                          "meteor": [round(v, 4) for v in per_study["meteor"]]},
        }

    if labelled_csv is not None and not Path(labelled_csv).is_file():
        raise FileNotFoundError(f"labelled CSV {labelled_csv} not found; pass a CSV in the CheXpert labeler's "
                                "labeled_reports.csv format, or none")
    gold_csv = Path(labelled_csv) if labelled_csv else Path(labeller_dir) / "labeled_reports.csv"
    labeller_check = agreement(labeller, gold_csv) if gold_csv.is_file() else None
    mesh = _mesh_headings(reports, {s.report_id for s in studies})
    mesh_check = mesh_agreement(labeller, [f"{s.findings} {s.impression}" for s in studies],
                                [mesh.get(s.report_id, []) for s in studies]) if any(mesh.values()) else None
    inputs = [*map(Path, reports), Path(split_file), Path(labeller_dir)]
    report: dict[str, Any] = {
        "task": "IMPRESSION from INDICATION, scored against the study's own impression",
        "inputs": {str(path): sha256(path) for path in inputs},
        "split": {"file": str(split_file), "test": TEST_SPLIT, "pool": POOL_SPLIT,
                  "items": {name: len(items) for name, items in splits.items()},
                  "with_indication_and_impression": {name: len(items) for name, items in usable.items()},
                  "evaluated": len(studies), "count_limit": count,
                  "mapping_check": mapping_check(Path(split_file), by_key)},
        "reports_read": len(by_key),
        "methods": {METHODS[0]: f"the fixed impression {NORMAL_TEMPLATE!r}",
                    METHODS[1]: "impression of the train study with the nearest indication (cosine, text encoder)",
                    METHODS[2]: f"of the {VOTE_K} nearest train studies, the impression with the highest mean "
                                "cosine to the others'",
                    METHODS[3]: f"of the {mbr_setting['k']} nearest train studies, the impression with the highest "
                                f"summed ROUGE-L to the others' (k {'tuned on ' + TUNE_SPLIT if tuning else 'default'}"
                                f" over {list(MBR_KS)})"},
        "mbr": mbr_setting,
        "text_encoder": str(encoder.model_path),
        "seed": seed, "bootstrap": {"corpus_metrics_resamples": resamples, "per_study_metrics_resamples": 2000,
                                    "level": 0.95, "unit": "study"},
        "finding_metrics": {"observations": list(observations), "positive": "label 1 (uncertain -1 is not "
                            "positive; 'uncertain_as_positive' gives the lenient variant)",
                            "macro": "mean per-observation F1 over observations positive in a reference or draft"},
        "labeller": {"dir": str(labeller_dir), "rules": {str(label): len(rules) for label, rules in labeller.rules},
                     "skipped_patterns": list(labeller.skipped_patterns), "agreement": labeller_check,
                     "mesh_silver_check": mesh_check},
        "results": results,
        "not_computed": [NOT_COMPUTED],
        # Ids, not text: the IU reports are CC BY-NC-ND 4.0, and results are committed to the project.
        "sources": {method: sources[method] for method in METHODS[1:]},
        "studies": [s.report_id for s in studies],
        "seconds": round(time.perf_counter() - started, 1),
    }
    if out_dir:
        write_json_and_markdown(report, render_markdown(report), Path(out_dir), "report")
        plot_metrics(report, Path(out_dir) / "report.png")
    return report


def _paired_gain(scores: Sequence[float], baseline: Sequence[float], seed: int) -> dict[str, Any]:
    """Mean per-study difference to the baseline's scores with its paired bootstrap interval."""
    differences = np.asarray(scores) - np.asarray(baseline)
    return {"mean": float(differences.mean()), "ci95": bootstrap_interval(differences, seed=seed)}


def _mesh_headings(reports: Sequence[Path], wanted: set[str]) -> dict[str, list[str]]:
    """The coders' MeSH terms of the wanted reports (the ``mesh`` field of the IU mappings; empty for an export
    without one), for the labeller's silver check."""
    return {record.source_id: list(record.fields.get("mesh") or []) for record in load_reports(reports)
            if isinstance(record, SourceRecord) and record.source_id in wanted}


def plot_metrics(report: Mapping[str, Any], path: Path) -> Path:
    """Grouped bars: each headline metric per method, with its 95% interval as error bars; CIDEr (not bounded by 1)
    on its own axis so that it does not flatten the others."""
    plt = pyplot()
    methods = list(report["results"])
    groups = [[name for name in HEADLINE if name != "cider"], ["cider"]]
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [len(groups[0]), 1.6]})
    width = 0.8 / len(methods)
    for axis, names in zip(axes, groups, strict=True):
        positions = np.arange(len(names))
        for m, method in enumerate(methods):
            result = report["results"][method]
            values = np.array([result["metrics"][name] for name in names], dtype=float)
            low = np.array([result["ci95"][name][0] for name in names], dtype=float)
            high = np.array([result["ci95"][name][1] for name in names], dtype=float)
            errors = np.nan_to_num(np.vstack([values - low, high - values]).clip(min=0))
            axis.bar(positions + (m - (len(methods) - 1) / 2) * width, np.nan_to_num(values), width, yerr=errors,
                     capsize=2, label=method)
        axis.set_xticks(positions, [name.replace("finding_", "finding ").replace("_", " ") for name in names],
                        rotation=30, ha="right")
    axes[0].set(ylabel="score", title=f"Impression from indication, IU test split ({report['split']['evaluated']} "
                                      "studies; 95% bootstrap intervals)")
    axes[0].legend()
    return save_figure(figure, path)


def _interval(value: float, ci: Sequence[float]) -> str:
    """A metric and its interval, as every table cell shows them."""
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report for people: metrics with intervals, the labeller's agreement, what was not computed."""
    split = report["split"]
    lines = ["# Report generation: IMPRESSION from INDICATION (IU / Open-i)", "",
             f"{split['evaluated']} test studies of `{Path(split['file']).name}` with an indication and an impression "
             f"(split items: {split['items']}; usable: {split['with_indication_and_impression']}); retrieval pool: "
             f"the {split['with_indication_and_impression'][split['pool']]} {split['pool']} studies. Text encoder: "
             f"`{'/'.join(Path(report['text_encoder']).parts[-2:])}`. Intervals: 95% percentile bootstrap over studies "
             f"({report['bootstrap']['corpus_metrics_resamples']} resamples recomputing the corpus-level BLEU, CIDEr "
             f"and finding scores; {report['bootstrap']['per_study_metrics_resamples']} for the per-study means of "
             f"ROUGE-L and METEOR; seed {report['seed']}). Id mapping check: the split's own report text contains the "
             f"mapped impression for {split['mapping_check']['impression_found']} of "
             f"{split['mapping_check']['items_with_report_text']} test items.", "",
             "| method | " + " | ".join(HEADLINE) + " |", "|---|" + "---|" * len(HEADLINE)]
    for method, result in report["results"].items():
        lines.append(f"| {method} | " + " | ".join(_interval(result["metrics"][name], result["ci95"][name])
                                                   for name in HEADLINE) + " |")
    mbr = report["mbr"]
    tuned = (f"MBR consensus: k = {mbr['k']}, tuned on the {mbr['val_studies']} {mbr['tuned_on']} studies (mean "
             "ROUGE-L by k: " + ", ".join(f"{k}: {value:.3f}" for k, value in mbr["val_rouge_l_by_k"].items()) + ")"
             if "val_rouge_l_by_k" in mbr else f"MBR consensus: k = {mbr['k']}, {mbr['tuned_on']}")
    lines += ["", "Methods: " + "; ".join(f"**{name}**: {text}" for name, text in report["methods"].items()) + ".", "",
              tuned + ".", "",
              "BLEU and CIDEr (CIDEr-D) are corpus-level, ROUGE-L and METEOR the mean of per-study scores "
              "(pycocoevalcap after its PTB tokenizer; the METEOR jar's corpus aggregate is in the JSON as "
              "`meteor_corpus`: " + ", ".join(f"{m} {r['meteor_corpus']:.3f}" for m, r in report["results"].items())
              + "). Finding scores: " + report["finding_metrics"]["positive"] + "; macro = "
              + report["finding_metrics"]["macro"] + ". With uncertain counted positive, micro F1: "
              + ", ".join(f"{m} {r['uncertain_as_positive']['finding_f1_micro']:.3f}"
                          for m, r in report["results"].items()) + "; without the No Finding observation (a normal "
              "draft scores on it whenever the reference is normal), micro F1: "
              + ", ".join(f"{m} {r['without_no_finding']['finding_f1_micro']:.3f}"
                          for m, r in report["results"].items()) + ".", "",
              "Distinct drafts: " + ", ".join(f"{m} {r['distinct_drafts']}" for m, r in report["results"].items())
              + ". Paired ROUGE-L gain over the normal template, per study: "
              + ", ".join(f"{m} {r['rouge_l_gain_over_template']['mean']:+.3f} "
                          f"[{r['rouge_l_gain_over_template']['ci95'][0]:+.3f}, "
                          f"{r['rouge_l_gain_over_template']['ci95'][1]:+.3f}]"
                          for m, r in report["results"].items() if m != METHODS[0]) + ".", "",
              "Not computed: " + "; ".join(report["not_computed"]) + ".", ""]
    check = report["labeller"]["agreement"]
    if check:
        lines += [f"## The finding labeller against `{Path(check['file']).name}` ({check['reports']} reports, "
                  f"{check['cells']} labels)", "",
                  f"Overall: accuracy over 1 / 0 / -1 / blank {check['accuracy']:.3f}; positive F1 "
                  f"{_maybe(check['positive']['f1'])}. Rule approximation of the CheXpert labeler (see "
                  "`evaluation/chexpert_labeler.py`).", "",
                  "| observation | accuracy | positive F1 | gold positives |", "|---|---|---|---|"]
        lines += [f"| {name} | {row['accuracy']:.3f} | {_maybe(row['f1'])} | {row['actual_positive']} |"
                  for name, row in check["per_observation"].items()]
        lines.append("")
    mesh = report["labeller"]["mesh_silver_check"]
    if mesh:
        lines += [f"### Silver check: the labeller on findings + impression against the IU coders' MeSH headings "
                  f"({mesh['reports']} evaluated studies)", "",
                  "Present = labelled positive or uncertain. MeSH codes what the report shows, under its own headings, "
                  "so this bounds gross errors rather than measuring accuracy.", "",
                  "| observation | agreement | F1 of present | MeSH positives | labeller positives |",
                  "|---|---|---|---|---|"]
        lines += [f"| {name} | {row['accuracy']:.3f} | {_maybe(row['f1'])} | {row['actual_positive']} | "
                  f"{row['predicted_positive']} |" for name, row in mesh["per_observation"].items()]
        lines.append("")
    lines.append("No report text is reproduced here (the IU reports are CC BY-NC-ND 4.0: no derived copies); "
                 "`studies` and `sources` in the JSON give each test study and the train study each retrieval method "
                 "copied, to look up in the source files.")
    return "\n".join(lines) + "\n"


def _maybe(value: float | None) -> str:
    """A score that may be undefined (no positives on either side)."""
    return "n/a" if value is None else f"{value:.3f}"
