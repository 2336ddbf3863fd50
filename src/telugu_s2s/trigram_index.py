"""Cosine nearest neighbours over TF-IDF character 3-gram vectors: the reply planner's
and the retrieval benchmark's text similarity (Telugu words share stems across inflections,
so 3-grams match where whole words do not)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


def trigrams(text: str) -> Counter:
    padded = f"  {text} "
    return Counter(padded[i : i + 3] for i in range(len(padded) - 2))


def unit_rows(matrix):
    """A sparse (N, V) matrix with each row scaled to unit length (zero rows stay zero)."""
    from scipy import sparse

    norms = np.sqrt(matrix.multiply(matrix).sum(axis=1)).A1 + 1e-9
    return sparse.diags(1.0 / norms) @ matrix


class TrigramIndex:
    """Cosine nearest neighbours over TF-IDF character 3-gram vectors."""

    def __init__(self, texts: list[str]):
        counts = [trigrams(t) for t in texts]
        self.vocab = {g: i for i, g in enumerate(sorted(set().union(*counts)))}
        df = Counter(g for c in counts for g in c)
        self.idf = np.array([math.log(len(texts) / df[g]) + 1.0 for g in self.vocab])
        self.matrix = self._vectors(counts)

    def _vectors(self, counts: list[Counter]):
        rows, cols, vals = [], [], []
        for r, c in enumerate(counts):
            for g, n in c.items():
                if g in self.vocab:
                    rows.append(r), cols.append(self.vocab[g]), vals.append(n)
        from scipy import sparse

        m = sparse.csr_matrix((vals, (rows, cols)), shape=(len(counts), len(self.vocab)))
        return unit_rows(m.multiply(self.idf[None]).tocsr())

    def vectors(self, texts: list[str]):
        """(Q, V) unit TF-IDF rows, sparse."""
        return self._vectors([trigrams(t) for t in texts])

    def scores(self, queries: list[str]) -> np.ndarray:
        """(Q, N) cosine similarities against the index's rows."""
        return (self.vectors(queries) @ self.matrix.T).toarray()

    def nearest(self, queries: list[str]) -> np.ndarray:
        return self.scores(queries).argmax(axis=1)
