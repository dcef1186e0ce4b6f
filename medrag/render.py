"""Terminal rendering of answers and search results, for the command line and the demo (the UI draws its own)."""

from __future__ import annotations

from medrag.types import DRAFT_NOTICE, Answer, SearchResult


def render_search(result: SearchResult, explain: bool = False) -> str:
    """The route (with ``explain``) and the ranked evidence with passages."""
    lines = []
    if explain:
        route = result.route
        lines += [f"Route: {route.intent} (confidence {route.confidence:.2f})", f"  {route.reason}",
                  "  sources: " + ", ".join(f"{s.collection} weight {s.weight:.2f} alpha {s.alpha} top {s.limit}"
                                            for s in route.searches)
                  + ("; the image by the joint vector" if route.image_search else ""),
                  "  models: " + ", ".join(f"{role}={name}" for role, name in route.models.items()),
                  "  timings: " + ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in result.timings_ms.items())]
    lines += [read.sentence for read in result.reads]
    lines.append(f"Evidence ({len(result.evidence)}):")
    for rank, item in enumerate(result.evidence, 1):
        title = item.properties.get("title") or item.properties.get("finding") or ""
        # "#rank", not "[rank]": square brackets are the answer's citations
        lines.append(f"#{rank} {item.collection} {item.source_id}  score {item.score:.4f}  {title}".rstrip())
        if explain:
            found = "     found by " + ", ".join(f"{name} #{place}" for name, place in item.ranks.items())
            if result.fusion:
                found += (f"; fusion score {result.fusion.scores[rank - 1]:.2f} "
                          f"(retrieval #{result.fusion.retrieval_ranks[rank - 1]})")
            lines.append(found)
        lines += [f"     - {passage}" for passage in item.passages]
    lines += [f"Warning: {warning}" for warning in result.warnings]
    return "\n".join(lines)


def render_answer(answer: Answer, explain: bool = False) -> str:
    """The answer, the decision, the numbered sources, then (with ``explain``) the search behind it."""
    lines = [f"{answer.heading} ({answer.mode}): {answer.text}"]
    if answer.decision:
        lines.append(f"Decision: {answer.decision.headline} (confidence {answer.decision.confidence:.2f}; "
                     f"{answer.decision.decider}: {answer.decision.reliability})")
    if not explain:  # with explain, the search below shows them
        lines += [read.sentence for read in answer.search.reads]
    if answer.citations:
        lines.append("Sources:")
        lines += [f"  [{c.number}] {c.label}: {c.sentence}" for c in answer.citations]
    lines += [f"  dropped (unsupported): {claim.text} ({claim.note})" for claim in answer.dropped]
    lines += [f"Warning: {warning}" for warning in answer.warnings]
    if explain:
        lines += ["", render_search(answer.search, explain=True),
                  "  answer timings: " + ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in answer.timings_ms.items()
                                                   if stage not in answer.search.timings_ms),
                  "  models: " + ", ".join(f"{role}={name}" for role, name in answer.models.items())]
    lines.append(DRAFT_NOTICE)
    return "\n".join(lines)
