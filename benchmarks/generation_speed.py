"""Readers on 2 cores: load time, time to first token, tokens/s and the yes / no / maybe scoring time, per runtime.

Three readers on the same prompts (PubMedQA questions with 8 evidence sentences, the answer's own prompt; the
decision is scored as an answer scores it, over the whole abstract under its own instruction, after the answer):
today's former path (SmolLM2-135M through transformers, float32, dequantised from its GGUF), SmolLM2-135M through
llama.cpp (the same GGUF), and Qwen2.5-Coder-1.5B-Instruct Q4_K_M through llama.cpp (the default reader). Greedy
decoding. Generation rate counts the tokens after the first over the time after the first; the first token's
time is the prompt's evaluation. Ratios are against the transformers path measured in the same run.

    python benchmarks/generation_speed.py --out benchmarks/results/generation_speed.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from medrag.config import load_config
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.generate.decision import OPTIONS, decision_prompt
from medrag.generate.evidence import EvidenceSentence, quoted_evidence
from medrag.generate.prompt import build_prompt
from medrag.hf_cache import quiet_loading
from medrag.lm.base import GenerationSettings, LanguageModel, TransformersModel
from medrag.lm.load import load_language_model
from medrag.lm.packaged import QWEN_CODER_1_5B, SMOLLM2_135M
from medrag.text.sentences import split_sentences


def evidence_of(record, limit: int | None = 8) -> list[EvidenceSentence]:
    sentences = [s for context in record.contexts for s in split_sentences(context)][:limit]
    return quoted_evidence("PubmedArticle", record.pmid, sentences)


def transformers_copy(gguf: Path, folder: Path) -> TransformersModel:
    """The GGUF dequantised to a float32 transformers folder, as medrag loaded SmolLM2 before llama.cpp."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_loading():
        quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        settings = quantised.config.to_dict()
        settings.pop("quantization_config", None)  # transformers will not save a GGUF-loaded model as is
        model = AutoModelForCausalLM.from_config(type(quantised.config).from_dict(settings), dtype=torch.float32)
        model.load_state_dict(quantised.state_dict())
        model.generation_config = quantised.generation_config
        model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    return TransformersModel.load(folder, "SmolLM2-135M-Instruct (transformers, float32)")


def measure(model: LanguageModel, records, new_tokens: int) -> dict[str, float]:
    first, rates, totals, prompt_rates, decide = [], [], [], [], []
    settings = GenerationSettings(max_new_tokens=new_tokens)
    for record in tqdm(records, desc=model.name, unit="prompt"):
        evidence = evidence_of(record)
        prompt, _ = build_prompt(model, record.question, "", evidence, new_tokens)
        generated = model.generate(prompt, settings)
        first.append(generated.first_token_seconds)
        totals.append(generated.seconds)
        prompt_rates.append(model.count_tokens(prompt) / generated.first_token_seconds)
        if generated.tokens > 1:
            rates.append((generated.tokens - 1) / (generated.seconds - generated.first_token_seconds))
        question_prompt = decision_prompt(model, record.question, evidence_of(record, limit=None))
        started = time.perf_counter()
        model.option_log_probabilities(question_prompt, OPTIONS)
        decide.append(time.perf_counter() - started)
    return {"prompts": len(records), "time_to_first_token_p50_s": float(np.median(first)),
            "prompt_tokens_per_second_p50": float(np.median(prompt_rates)),
            "generation_tokens_per_second_p50": float(np.median(rates)) if rates else None,
            "answer_seconds_p50": float(np.median(totals)), "answer_seconds_p95": float(np.percentile(totals, 95)),
            "decision_scoring_seconds_p50": float(np.median(decide)),
            "decision_scoring_seconds_p95": float(np.percentile(decide, 95))}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=Path, help="PubMedQA-format JSON (default: the shared dev set)")
    parser.add_argument("--prompts", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/generation_speed.json"))
    args = parser.parse_args()
    config = load_config()
    torch.set_num_threads(os.cpu_count() or 1)
    questions = args.questions or Path(config.data_dir) / "pubmed" / "pubmedqa_pqal_dev.json"
    records = read_pubmedqa(questions)[-args.prompts:]
    readers = {}
    with tempfile.TemporaryDirectory() as scratch:
        loaders = {
            "smollm2_transformers": lambda: transformers_copy(SMOLLM2_135M.gguf(config.cache_dir), Path(scratch)),
            "smollm2_llama_cpp": lambda: load_language_model(SMOLLM2_135M.name, config.cache_dir),
            "qwen_1_5b_llama_cpp": lambda: load_language_model(QWEN_CODER_1_5B.name, config.cache_dir),
        }
        for name, load in loaders.items():
            started = time.perf_counter()
            model = load()
            loaded = time.perf_counter() - started
            readers[name] = {"model": model.name, "load_seconds": loaded, **measure(model, records, args.new_tokens),
                             "peak_rss_mb_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            del model
            gc.collect()
    base = readers["smollm2_transformers"]
    for row in readers.values():
        row["generation_speedup_vs_transformers"] = (row["generation_tokens_per_second_p50"] /
                                                     base["generation_tokens_per_second_p50"])
        row["first_token_speedup_vs_transformers"] = (base["time_to_first_token_p50_s"] /
                                                      row["time_to_first_token_p50_s"])
    machine = {"platform": platform.platform(), "cpu": cpu_model(), "cpus": os.cpu_count(),
               "python": platform.python_version(),
               "load_average_at_start": os.getloadavg()}
    report = {"machine": machine,
              "questions": str(questions), "new_tokens": args.new_tokens, "readers": readers}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(readers, indent=2))


if __name__ == "__main__":
    main()
