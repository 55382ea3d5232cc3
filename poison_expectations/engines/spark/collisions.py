"""Clean-label collisions on Spark: batch groups found by a grid join, judged
by the core (core/signals/collision.py `judge_groups`) on the driver.

The per-row part runs in the per-row pass (scoring.py GROUP_SIGNALS): each
row's `batch_scores` (the share of its k nearest reference rows with another
label) and its class-conditional conformal p-value; Higher Criticism over
them is the family's gate (run.signal_gates), as in the pandas checkpoint
against a reference. This module finds and judges the groups, whose rows it
flags:

1. Nodes: the batch's distinct (encoded row, label) pairs with their row
   counts (`mapInPandas`, `groupBy`): identical rows of one label are one
   node, so a titanic-like table of rows repeated hundreds of times is a
   few nodes.
2. Tight groups: node pairs of one label within the state's `radius`, from
   the near-duplicate module's two shifted grids (cells salted with the
   label code). Each partition of cells yields a spanning forest of its
   close pairs (one edge a node; small cells' pairs compared at once, a
   large cell in distance blocks of BLOCK nodes), so the driver collects
   at most two edges per node that has a close partner of its label, and
   runs connected components (scipy) on them. Groups: components of at
   least `min_group_size` rows.
3. Only when there are groups: the members' rows (input columns, id,
   label; at most MAX_MEMBER_ROWS, else the groups are not judged and the
   gate says so) are collected, a core Analysis of them is built against
   the profile as scoring.py builds one per chunk, up to REPRESENTATIVES
   reps per group are drawn from it, each rep's other batch rows of its
   label within `local_radius` are counted in one pass over the nodes, and
   `judge_groups` runs with the batch's rows per class.
4. The collision groups' rows get `collision_member_flagged` / `_reason`,
   and every group member `collision_member_score` (its group's unlike
   share: the pandas engine's `collision_score`), by a broadcast join on the
   id; flagged rows join the flagged set as the trigger flags do.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from poison_expectations.core.analysis import build_analysis
from poison_expectations.core.signals.collision import CleanLabelCollision, per_group, representatives
from poison_expectations.engines.spark.cells import BLOCK, SMALL_CELL, close_pairs_in_cells, shared_cells, within
from poison_expectations.engines.spark.near_duplicates import (GRID_FACTOR, KEY, VEC, grid_cells, grid_pairs,
                                                               key_partitions)
from poison_expectations.engines.spark.scoring import ScoringPlan
from poison_expectations.engines.spark.storage import persisted

SECTION = "clean_label_collision"
NAME = CleanLabelCollision.name  # "collision"
FLAG, REASON, SCORE = f"{NAME}_member_flagged", f"{NAME}_member_reason", f"{NAME}_member_score"
LABEL, COUNT = "cl_label", "cl_rows"
MAX_MEMBER_ROWS = 500_000  # group members collected on the driver at most (ids, features, label)


@dataclass
class NodePlan:
    """What the tasks need besides the scoring plan (plain data)."""

    scoring: ScoringPlan
    params: dict[str, Any]  # the collision signal's parameters
    columns: list[str]  # the input's columns (the scored frame has more)
    width: float  # grid cell side

    def state(self) -> dict:
        return self.scoring.profile().states[CleanLabelCollision(**self.params).cache_key()]

    def encode(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(node key, encoded float32 vector, label code) per row of an input chunk."""
        analysis = build_analysis(frame[self.columns].reset_index(drop=True), self.scoring.roles,
                                  self.scoring.options, profile=self.scoring.profile())
        X, y = np.asarray(analysis.batch.X, dtype=np.float32), np.asarray(analysis.batch.y, dtype=np.int64)
        return node_keys(X, y), X, y


def node_keys(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """int64 hash of each (encoded row, label code): equal only for identical rows of one label."""
    frame = pd.DataFrame(np.ascontiguousarray(X).view(np.int32))  # the float32 bits: exact, -0.0 != 0.0 aside
    frame["label"] = y
    return pd.util.hash_pandas_object(frame, index=False).to_numpy().view(np.int64)


# -- executors ------------------------------------------------------------------

def _encode_nodes(plan: NodePlan, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas body: node key, label, vector and both label-salted grid cells of each row."""
    for chunk in chunks:
        if len(chunk):
            keys, X, y = plan.encode(chunk)
            yield pd.DataFrame({KEY: keys, LABEL: y, VEC: list(X), "c0": grid_cells(X, plan.width, 0.0, y),
                                "c1": grid_cells(X, plan.width, 0.5, y)})


def _partition_forest(radius: float, grid: str, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas body over a partition hashed by cell: a spanning forest (u,
    v, and their row counts nu, nv) of the close node pairs of its shared
    cells, at most one edge a node. The pairs of cells of at most SMALL_CELL
    nodes are compared all at once (vectorised; per-cell calls cost ~1 ms
    each, and a partition holds tens of thousands of shared cells), a larger
    cell in distance blocks (`cell_roots`)."""
    found = shared_cells(chunks, grid)
    if found is None:
        return
    frame, starts, sizes = found
    X = np.stack(frame[VEC].to_numpy()).astype(np.float64)
    small = sizes <= SMALL_CELL
    a, b = close_pairs_in_cells(X, starts[small], sizes[small], radius)  # the near-duplicate grids' own test
    u, v = [a], [b]
    for start, size in zip(starts[~small], sizes[~small], strict=True):  # a forest per block: bounded memory
        root = cell_roots(X[start:start + size], radius)
        u.append(start + np.arange(size))
        v.append(start + root)
    root = roots(len(frame), np.concatenate(u), np.concatenate(v))
    linked = np.flatnonzero(root != np.arange(len(frame)))
    keys, counts = frame[KEY].to_numpy(np.int64), frame[COUNT].to_numpy(np.int64)
    yield pd.DataFrame({"u": keys[linked], "v": keys[root[linked]], "nu": counts[linked],
                        "nv": counts[root[linked]]})


def roots(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per node 0..n-1 the smallest node of its connected component (edges u-v)."""
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    first = np.full(component.max() + 1, n)
    np.minimum.at(first, component, np.arange(n))
    return first[component]


def cell_roots(X: np.ndarray, radius: float) -> np.ndarray:
    """`roots` of one cell's close pairs, from distance blocks of BLOCK rows
    against the cell (the forest so far keeps the earlier blocks' components)."""
    m = len(X)
    root = np.arange(m)
    for start in range(0, m, BLOCK):
        i, j = np.nonzero(within(X[start:start + BLOCK], X, radius))
        root = roots(m, np.concatenate([i + start, np.arange(m)]), np.concatenate([j, root]))
    return root


def _near_counts(reps: tuple[np.ndarray, np.ndarray], radius: float,
                 chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas body over the nodes: per rep, the batch rows of its label within the radius."""
    R, labels = reps
    total = np.zeros(len(labels), dtype=np.int64)
    for chunk in chunks:
        if len(chunk):
            X = np.stack(chunk[VEC].to_numpy()).astype(np.float64)
            same = chunk[LABEL].to_numpy(dtype=np.int64)[:, None] == labels[None, :]
            hit = within(X, R, radius) & same
            total += (hit * chunk[COUNT].to_numpy(dtype=np.int64)[:, None]).sum(axis=0)
    yield pd.DataFrame({"rep": np.arange(len(labels), dtype=np.int64), "near": total})


def _members(plan: NodePlan, node_group: dict[int, int], keep: list[str],
             chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """mapInPandas body over the scored rows: the rows of a group's nodes (`keep` columns and their group)."""
    for chunk in chunks:
        if len(chunk):
            chunk = chunk.reset_index(drop=True)
            keys, _, _ = plan.encode(chunk)
            group = pd.Series(keys).map(node_group)
            mine = group.notna().to_numpy()
            if mine.any():
                yield chunk.loc[mine, keep].assign(cl_group=group[mine].to_numpy(dtype=np.int64))


# -- driver -------------------------------------------------------------------

def run(scored, plan: ScoringPlan, columns: list[str], rows: int) -> tuple[dict[str, Any], Any]:
    """(what the collision gate reports besides its Higher Criticism: the
    groups; scored with FLAG / REASON / SCORE)."""
    from pyspark.sql import functions as F

    params = dict(plan.signals)[SECTION]
    signal = CleanLabelCollision(**params)
    state = plan.profile().states[signal.cache_key()]
    if "local_radius" not in state:  # the per-row part (the gate) needs none; the group test does
        return ({"candidate_groups": 0, "collision_groups": [], "not_judged": "the profile predates the "
                 "collision test's local radius; fit it again (poison-check fit)"}, with_flags(scored, plan, None))
    radius, local = float(state["radius"]), float(state["local_radius"])
    nodes_plan = NodePlan(plan, params, columns, GRID_FACTOR * radius if radius > 0 else 1.0)
    nodes = distinct_nodes(scored, nodes_plan, rows)
    try:
        min_size = signal.params["min_group_size"]
        # one aggregation: rows per class, distinct rows, and the nodes that are a group alone
        alone = F.col(COUNT) >= min_size  # (not a null key: Arrow would hand a nullable long over as float64)
        big = [alone.alias("alone"), F.when(alone, F.col(KEY)).otherwise(F.lit(0)).alias("big")]
        summed = nodes.groupBy(LABEL, *big).agg(F.sum(COUNT).alias("n"), F.count(F.lit(1)).alias("nodes")).toPandas()
        n_nodes = int(summed["nodes"].sum())
        alone = summed[summed["alone"].to_numpy(dtype=bool)]
        node_group, sizes = tight_groups(nodes, radius, n_nodes, min_size,
                                         (alone["big"].to_numpy(np.int64), alone["n"].to_numpy(np.int64)))
        report: dict[str, Any] = {"radius": radius, "local_radius": local, "candidate_groups": len(sizes),
                                  "collision_groups": [], "distinct_rows": n_nodes, "mode": "reference",
                                  "engine": "spark (grid join of distinct rows, core judge_groups)"}
        if not sizes:
            return report, with_flags(scored, plan, None)
        if sum(sizes) > MAX_MEMBER_ROWS:
            report["not_judged"] = (f"the {len(sizes)} tight groups hold {sum(sizes)} rows, more than the "
                                    f"{MAX_MEMBER_ROWS} the driver collects; no row is flagged by collision")
            return report, with_flags(scored, plan, None)
        per_class = summed.groupby(LABEL)["n"].sum()
        class_rows = np.zeros(int(per_class.index.max()) + 1, dtype=np.int64)
        class_rows[per_class.index.to_numpy(np.int64)] = per_class.to_numpy(np.int64)
        result, small = judge(scored, nodes, nodes_plan, signal, state, node_group, len(sizes), class_rows)
    finally:
        nodes.unpersist()
    report["collision_groups"] = result.summary["groups"]
    report["console_lines"] = result.summary["console_lines"]
    shown = np.flatnonzero(result.flags | (result.scores > 0))  # as the pandas collision_score: every group's share
    rows = pd.DataFrame({plan.id_name: small.batch.ids[shown], FLAG: result.flags[shown],
                         REASON: result.reasons[shown].astype(str), SCORE: result.scores[shown]})
    return report, with_flags(scored, plan, rows.drop_duplicates(plan.id_name))


def distinct_nodes(scored, plan: NodePlan, rows: int):
    """The persisted nodes (KEY, COUNT, LABEL, VEC, c0, c1), hashed into one
    partition per ROWS_PER_CELL_PARTITION rows (a Python task each, not
    spark.sql.shuffle.partitions: 200 tasks of ~1,000 nodes cost 90 s at 200k rows)."""
    from pyspark.sql import functions as F

    schema = f"{KEY} long, {LABEL} long, {VEC} array<float>, c0 long, c1 long"
    return persisted(scored.mapInPandas(functools.partial(_encode_nodes, plan), schema)
                     .repartition(key_partitions(rows), KEY)
                     .groupBy(KEY)
                     .agg(F.count(F.lit(1)).alias(COUNT), *[F.first(c).alias(c) for c in (LABEL, VEC, "c0", "c1")]))


def tight_groups(nodes, radius: float, n_nodes: int, min_size: int, alone: tuple[np.ndarray, np.ndarray]
                 ) -> tuple[dict[int, int], list[int]]:
    """({node key: group number}, rows per group): connected components of the
    nodes' close same-label pairs (spanning forests per cell) with at least
    `min_size` rows; `alone`: (keys, rows) of the nodes that many identical
    rows make a group without a partner."""
    edges = grid_pairs(nodes, radius, n_nodes, body=_partition_forest, extra=(COUNT,),
                       schema="u long, v long, nu long, nv long").toPandas()
    u, v = edges["u"].to_numpy(np.int64), edges["v"].to_numpy(np.int64)
    table = pd.DataFrame({KEY: np.concatenate([u, v, alone[0]]),
                          COUNT: np.concatenate([edges["nu"].to_numpy(np.int64), edges["nv"].to_numpy(np.int64),
                                                 alone[1]])}).drop_duplicates(KEY)
    keys, counts = table[KEY].to_numpy(np.int64), table[COUNT].to_numpy(np.int64)
    index = pd.Index(keys)
    n = len(keys)
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (index.get_indexer(u), index.get_indexer(v))), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    rows = np.bincount(component, weights=counts).astype(np.int64) if n else np.zeros(0, np.int64)
    big = np.flatnonzero(rows >= min_size)
    number = np.full(len(rows), -1, dtype=np.int64)
    number[big] = np.arange(len(big))
    mine = number[component] >= 0
    return dict(zip(keys[mine].tolist(), number[component][mine].tolist(), strict=True)), rows[big].tolist()


def judge(scored, nodes, plan: NodePlan, signal: CleanLabelCollision, state: dict, node_group: dict[int, int],
          n_groups: int, class_rows: np.ndarray):
    """(the core's SignalResult of `judge_groups`, the members' Analysis)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StructField, StructType

    scoring = plan.scoring
    keep = list(dict.fromkeys([*plan.columns, scoring.id_name]))
    fields = {f.name: f for f in scored.schema.fields}
    schema = StructType([fields[c] for c in keep] + [StructField("cl_group", LongType())])
    members = scored.mapInPandas(functools.partial(_members, plan, node_group, keep), schema).toPandas()
    roles = dataclasses.replace(scoring.roles, id_column=scoring.id_name)
    small = build_analysis(members[keep], roles, scoring.options, profile=scoring.profile())
    number = members["cl_group"].to_numpy(np.int64)
    groups = [np.flatnonzero(number == g) for g in range(n_groups)]
    reps = representatives(groups, signal.params["random_state"])
    at = np.concatenate(reps)
    R = np.asarray(small.batch.X[at], dtype=np.float64)
    body = functools.partial(_near_counts, (R, np.asarray(small.batch.y[at], dtype=np.int64)),
                             float(state["local_radius"]))
    counted = (nodes.select(KEY, LABEL, VEC, COUNT).mapInPandas(body, "rep long, near long")
               .groupBy("rep").agg(F.sum("near").alias("near")).toPandas())
    near = np.zeros(len(at), dtype=np.int64)
    near[counted["rep"].to_numpy(np.int64)] = counted["near"].to_numpy(np.int64)
    near = per_group(near - 1, reps)  # the rep itself left out
    return signal.judge_groups(state, small, groups, reps, near, class_rows=class_rows), small


def with_flags(scored, plan: ScoringPlan, rows: pd.DataFrame | None):
    """scored with FLAG, REASON and SCORE: the collision groups' rows by a
    broadcast join on the id (`rows`: id, flag, reason, score), else constants."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, DoubleType, StringType, StructField, StructType

    if rows is None or not len(rows):
        return scored.select("*", F.lit(False).alias(FLAG), F.lit("").alias(REASON), F.lit(0.0).alias(SCORE))
    id_name = plan.id_name
    schema = StructType([scored.schema[id_name], StructField(FLAG, BooleanType()), StructField(REASON, StringType()),
                         StructField(SCORE, DoubleType())])
    found = scored.sparkSession.createDataFrame(rows[[id_name, FLAG, REASON, SCORE]], schema)
    joined = scored.join(F.broadcast(found), on=id_name, how="left")
    return joined.select(*[F.col(f"`{c}`") for c in scored.columns], F.coalesce(F.col(FLAG), F.lit(False)).alias(FLAG),
                         F.coalesce(F.col(REASON), F.lit("")).alias(REASON),
                         F.coalesce(F.col(SCORE), F.lit(0.0)).alias(SCORE))


def gate_line(gate: dict) -> str:
    """The report line of the collision gate: its Higher Criticism, then the groups found."""
    head = (f"Higher Criticism {gate.get('statistic', 0):.3g}, p={gate.get('p_value', 1):.2g} (alpha "
            f"{gate.get('alpha', 0):g}); at least {gate.get('lower_bound', 0)} rows contaminated (confidence "
            f"1 - alpha)")
    found = gate.get("collision_groups", [])
    tail = f"; {len(found)} collision group(s) of {gate.get('candidate_groups', 0)} tight group(s)"
    if gate.get("not_judged"):
        tail += f" ({gate['not_judged']})"
    lines = gate.get("console_lines", [])[:3]
    return head + tail + ("".join(f"; {line}" for line in lines))
