"""Validated response data in the two forms the E-step multiplies with.

Accepted inputs (students in rows, items in columns):
* a dense array-like of floats: 1.0 correct, 0.0 incorrect, NaN not answered;
* a scipy.sparse matrix in the signed encoding: a stored +1 is a correct answer, a stored -1 an
  incorrect one, and an absent cell was not answered (the pipeline builds this from
  `student_attempts`). Explicitly stored zeros are rejected: they would be ambiguous.

Internally the data become two indicator matrices of the same shape, `correct` and `wrong`
(dense float arrays when at least DENSE_DENSITY of the cells are observed, CSR otherwise), split
into row chunks of students so that no products larger than chunk x nodes are ever allocated.
Sparse input is split chunk by chunk straight from the signed matrix (of any numeric dtype:
the pipeline's is int8), so the bank's full indicator matrices never exist at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# At or above this share of observed cells, dense BLAS products beat sparse ones.
DENSE_DENSITY = 0.25
# Students per chunk: bounds the chunk x nodes work arrays (e.g. 16384 x 241 doubles = 32 MB).
CHUNK_STUDENTS = 16384


@dataclass(frozen=True)
class Chunk:
    """One block of students: indicator matrices and their transposes, ready for products.

    `wrong` is None when the block is dense and complete (every cell observed): then
    W = 1 - C, and the products below need half the work.
    """

    correct: np.ndarray | sp.csr_matrix             # students x items
    wrong: np.ndarray | sp.csr_matrix | None
    correct_t: np.ndarray | sp.csr_matrix            # items x students
    wrong_t: np.ndarray | sp.csr_matrix | None

    def log_joint(self, log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
        """C @ log P + W @ log(1 - P): students x nodes."""
        if self.wrong is None:
            joint = self.correct @ (log_p - log_q)
            joint += log_q.sum(axis=0)
            return joint
        joint = self.correct @ log_p
        joint += self.wrong @ log_q
        return joint

    def counts(self, post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(C.T @ post, (C + W).T @ post): expected correct and expected responses."""
        r = self.correct_t @ post
        if self.wrong is None:
            return r, np.broadcast_to(post.sum(axis=0), r.shape)
        return r, r + self.wrong_t @ post

    def observed_cells(self, rows: slice = slice(None)):
        """(row, column, is_correct) of the observed cells in `rows` of the block."""
        correct = self.correct[rows]
        if sp.issparse(correct):
            cc, ww = correct.tocoo(), self.wrong[rows].tocoo()
            return (np.concatenate([cc.row, ww.row]), np.concatenate([cc.col, ww.col]),
                    np.concatenate([np.ones(cc.nnz, bool), np.zeros(ww.nnz, bool)]))
        if self.wrong is None:
            r, c = np.indices(correct.shape)
            return r.ravel(), c.ravel(), correct.ravel() > 0
        r, c = np.nonzero(correct + self.wrong[rows])
        return r, c, correct[r, c] > 0

    @property
    def n_students(self) -> int:
        return self.correct.shape[0]


@dataclass(frozen=True)
class ResponseData:
    """Observed responses, validated, in chunks of students."""

    n_students: int
    n_items: int
    chunks: tuple[Chunk, ...]
    correct_counts: np.ndarray     # per item
    response_counts: np.ndarray    # per item
    student_counts: np.ndarray     # responses per student
    is_dense: bool

    @property
    def max_responses_per_student(self) -> int:
        return int(self.student_counts.max()) if self.student_counts.size else 0


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise ValueError(f"responses must be 2-D (students x items), got {len(shape)} dimension(s)")
    if shape[0] == 0:
        raise ValueError("responses has zero students (rows)")
    if shape[1] == 0:
        raise ValueError("responses has zero items (columns)")


def _indicators_from_dense(responses) -> tuple[np.ndarray, np.ndarray]:
    try:
        values = np.asarray(responses, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"responses must be numeric (1, 0 or NaN): {exc}") from None
    _check_shape(values.shape)
    observed = ~np.isnan(values)
    bad = observed & (values != 0.0) & (values != 1.0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"responses may contain only 1, 0 and NaN; found {float(values[row, col])} "
            f"at student {row}, item {col} ({int(bad.sum())} invalid cell(s))"
        )
    correct = np.where(observed, values, 0.0)
    return correct, observed.astype(float) - correct


def _validated_signed(responses: sp.spmatrix) -> sp.csr_matrix:
    """The signed matrix as canonical CSR (duplicates summed), its stored values checked to be
    +1 or -1. Keeps the input's dtype (int8 from the pipeline): no float copy of the whole bank."""
    _check_shape(responses.shape)
    signed = sp.csr_matrix(responses)
    if not signed.has_canonical_format:
        signed = signed.copy()
        signed.sum_duplicates()
    data = signed.data
    bad = (data != 1) & (data != -1)
    if np.issubdtype(data.dtype, np.floating):
        bad |= np.isnan(data)
    if bad.any():
        raise ValueError(
            "sparse responses must use the signed encoding (+1 correct, -1 incorrect, absent = "
            f"not answered); found stored value {float(data[bad][0])!r}"
        )
    return signed


def _indicator(signed: sp.csr_matrix, sign: int) -> sp.csr_matrix:
    """Float 0/1 CSR of the cells of `signed` holding `sign`."""
    keep = signed.data == sign
    kept_before = np.concatenate([[0], np.cumsum(keep)])      # kept cells before each position
    indptr = kept_before[signed.indptr].astype(signed.indptr.dtype)
    return sp.csr_matrix((np.ones(int(keep.sum())), signed.indices[keep], indptr), shape=signed.shape)


def _sparse_chunks(signed: sp.csr_matrix, n_students: int, chunk: int) -> tuple[Chunk, ...]:
    """Chunks built one block of students at a time from the signed matrix: the whole bank's
    correct and wrong indicators never exist at once (memory: the chunks themselves)."""
    out = []
    for start in range(0, n_students, chunk):
        block = signed[start:min(start + chunk, n_students)]
        c, w = _indicator(block, 1), _indicator(block, -1)
        out.append(Chunk(c, w, c.T.tocsr(), w.T.tocsr()))
    return tuple(out)


def _chunks(correct, wrong, n_students: int, chunk: int) -> tuple[Chunk, ...]:
    out = []
    for start in range(0, n_students, chunk):
        rows = slice(start, min(start + chunk, n_students))
        c, w = correct[rows], wrong[rows]
        if sp.issparse(c):
            out.append(Chunk(c, w, c.T.tocsr(), w.T.tocsr()))
        elif not (c + w == 1.0).all():
            c, w = np.ascontiguousarray(c), np.ascontiguousarray(w)
            out.append(Chunk(c, w, c.T, w.T))  # transposed views: BLAS reads them in place
        else:
            c = np.ascontiguousarray(c)
            out.append(Chunk(c, None, c.T, None))
    return tuple(out)


def prepare_responses(responses, chunk_students: int = CHUNK_STUDENTS) -> ResponseData:
    """Validate `responses` and build the chunked indicator form (raises ValueError)."""
    if sp.issparse(responses):
        signed = _validated_signed(responses)
        n_students, n_items = signed.shape
        hit = signed.data > 0
        correct_counts = np.bincount(signed.indices[hit], minlength=n_items)
        response_counts = np.bincount(signed.indices, minlength=n_items)
        student_counts = np.diff(signed.indptr)
        dense = response_counts.sum() / (n_students * n_items) >= DENSE_DENSITY
        if dense:
            values = signed.toarray().astype(float)
            chunks = _chunks((values > 0).astype(float), (values < 0).astype(float), n_students, chunk_students)
        else:
            chunks = _sparse_chunks(signed, n_students, chunk_students)
    else:
        correct, wrong = _indicators_from_dense(responses)
        n_students, n_items = correct.shape
        correct_counts = correct.sum(axis=0)
        response_counts = correct_counts + wrong.sum(axis=0)
        student_counts = correct.sum(axis=1) + wrong.sum(axis=1)
        dense = response_counts.sum() / (n_students * n_items) >= DENSE_DENSITY
        if not dense:
            correct, wrong = sp.csr_matrix(correct), sp.csr_matrix(wrong)
        chunks = _chunks(correct, wrong, n_students, chunk_students)
    return ResponseData(
        n_students=n_students,
        n_items=n_items,
        chunks=chunks,
        correct_counts=np.asarray(correct_counts).astype(np.int64),
        response_counts=np.asarray(response_counts).astype(np.int64),
        student_counts=np.asarray(student_counts).astype(np.int64),
        is_dense=bool(dense),
    )
