"""Trigger patterns: a tabular analogue of Neural Cleanse.

A dirty-label backdoor stamps a few feature values (the trigger) on rows of
other classes and relabels them to a target class c. The search looks for
the trigger directly, as a rule "pattern A -> label c":

Items, per feature column of the raw table: each categorical level, each
exact numeric value, and each of `n_bins` quantile bins of a numeric column
(edges fitted on the reference when one is given), keeping only items held
by at least `min_support` batch rows. Candidates are single items and pairs
of items from different columns; pairs are formed only among the
`max_pair_items` most enriched single items (lift > 1, smallest p-values),
so the search costs O(n * columns + n * max_pair_items^2), never O(n * items^2).

For a pattern A and label c: support = count(A), confidence = P(y = c | A),
lift = confidence / P(y = c). A candidate is rare (support at most
`max_support_share` of the rows), near-certain (confidence >=
`min_confidence`), enriched (lift >= `min_lift`) and significant: the
one-sided binomial p-value of count(A and c) given count(A) against p0,
Benjamini-Hochberg adjusted over every (pattern, label) tested, is at most
`alpha`. p0 is the batch's class share; with a reference, the Clopper-Pearson
upper bound of the reference's P(c | A) when A has `min_support` reference
rows, else the reference's class share.

The purest significant candidates are ranked by how unlike their label
their rows' nearest neighbours are (shared k-NN graph); overlapping
candidates (same label, sharing half of the smaller one's rows) form one
trigger, led by its most unlike member among the larger ones, and the first
`max_triggers` triggers are checked.

Fit and score. `fit` learns the reference side of every item from the
fitted table (`trigger_items.fit_column`: frequent values and levels, bin
edges, a code per row), so `score` counts pattern supports and label rates
in the reference without its raw frame. The items themselves come from the
batch (a trigger is what the batch carries). Trigger patterns are a test
of patterns, not of rows: a row's score is its pattern's strength, so the
state holds no per-row `reference_scores`. One model is still trained at
score time: the leave-columns-out reclassifier (on the stored reference
rows against a reference), because the columns it leaves out are the
trigger's, which only the batch reveals.

The check is the Neural Cleanse question "does the pattern alone cause the
label?": a model that never saw the trigger's rows nor its columns (trained
on the reference, or in a self-check cross-fitted on the batch: each half of
the carriers is predicted by a model trained without it) predicts them; at
least `min_unlike_share` must get another class, significantly (binomial,
alpha) more often than the model errs on held-out rows of class c, and that
held-out error must be below `min_unlike_share` (else the other columns do
not know class c, and rows looking unlike it is no evidence). A legitimate
strong feature value fails this test: the rows' other columns still say c.

A confirmed trigger is named by its full pattern: per column, the most
specific item that covers at least 90% of the trigger's core rows (those
the model put in another class) and is at least twice as common there as in
the whole table -- so a common value that is part of the trigger joins, a
broad level every row has does not. The flagged rows are the rows of label
c carrying the full pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from poison_expectations.core.gates import clopper_pearson_upper_array
from poison_expectations.core.params.trigger_patterns import TRIGGER_PATTERNS
from poison_expectations.core.signals.base import Signal, SignalResult, State
from poison_expectations.core.signals.representation import (Reclassifier, benjamini_hochberg, column_blocks,
                                                              excess_test, plain, sample_ids)
from poison_expectations.core.signals.trigger_items import (class_counts, confidence_lower, console_line,
                                                             crossfit_reclassify, fit_column, item_columns,
                                                             item_json, overlap)

OVERLAP_MERGE = 0.5  # candidates sharing this share of the smaller one's rows are one trigger
COVER_SHARE = 0.9  # an item joins a trigger's pattern when it covers this share of its rows
COVER_ENRICHMENT = 2.0  # ... and is at least this many times more common there than in the table
PAIR_ITEM_ALPHA = 0.05  # unadjusted p-value an item needs to seed pairs
RANKED = 100  # significant candidates ranked for the reclassification check at most


@dataclass
class Candidate:
    items: tuple[tuple[int, int], ...]  # (item column index, item code)
    label: int
    support: int
    hits: int
    p_value: float
    q_value: float = 1.0  # Benjamini-Hochberg adjusted
    rows: np.ndarray | None = None  # rows carrying the pattern with the label


class TriggerPatterns(Signal):
    name = "trigger"
    calibration = None
    declaration = TRIGGER_PATTERNS

    # -- main -------------------------------------------------------------------
    def fit(self, analysis) -> State:
        """The reference side of every feature column's items (plain arrays)."""
        p = self.params
        analysis.require_labels()
        frame = analysis.fitted.frame
        return {"columns": {name: fit_column(frame[name], p["n_bins"], p["min_support"])
                            for name in self._columns(analysis)}}

    def score(self, state: State, analysis) -> SignalResult:
        """The search on the batch, with the stored reference side as the null."""
        analysis.require_reference()
        return self._search(analysis, state["columns"])

    def score_fitted(self, state: State, analysis) -> SignalResult:
        """Self-check: the search on the fitted rows, the batch's class shares as the null."""
        return self._search(analysis, None)

    def _search(self, analysis, ref_columns: dict | None) -> SignalResult:
        p = self.params
        y = analysis.require_labels()
        n, n_classes = len(y), analysis.n_classes
        ref = analysis.reference if ref_columns is not None else None
        items = [ic for name in self._columns(analysis) for ic in item_columns(
            analysis.batch.frame[name], None if ref_columns is None else ref_columns[name], name, p["n_bins"],
            p["min_support"])]
        prior = np.bincount(y, minlength=n_classes) / n
        ref_prior = None if ref is None else np.bincount(ref.y, minlength=n_classes) / len(ref.y)

        singles, n_tests = self._singles(items, y, ref, prior, ref_prior, n_classes)
        pairs, n_pair_tests = self._pairs(items, singles, y, ref, prior, ref_prior, n_classes)
        candidates = singles + pairs
        q = benjamini_hochberg(np.array([c.p_value for c in candidates] +
                                        [1.0] * (n_tests + n_pair_tests - len(candidates))))[:len(candidates)]
        max_support = p["max_support_share"] * n
        chosen = [c for c, qv in zip(candidates, q, strict=True)
                  if p["min_support"] <= c.support <= max_support
                  and c.hits / c.support >= p["min_confidence"]
                  and c.hits / c.support / prior[c.label] >= p["min_lift"]
                  and qv <= p["alpha"]]
        for c, qv in zip(candidates, q, strict=True):
            c.q_value = float(qv)
        triggers = self._group(chosen, items, y, analysis)
        reports = [self._assess(t, items, analysis, prior, n_classes) for t in triggers]
        return self._result(reports, analysis, n_tests + n_pair_tests, len(chosen))

    def _columns(self, analysis) -> list[str]:
        embedded = set(analysis.roles.embedding_columns)
        return [c for c in analysis.roles.resolved_features(analysis.batch.frame) if c not in embedded]

    # -- search -------------------------------------------------------------------
    def _p0(self, ref_hits, ref_support, label, prior, ref_prior):
        """Null rate of label c among rows with the pattern (see module doc)."""
        if ref_prior is None:
            return np.broadcast_to(prior[label], np.shape(label)).astype(float)
        ref_hits, ref_support, label = np.broadcast_arrays(ref_hits, ref_support, label)
        out = ref_prior[label].astype(float)
        enough = ref_support >= self.params["min_support"]
        out[enough] = clopper_pearson_upper_array(ref_hits[enough], ref_support[enough])
        return out

    def _singles(self, items, y, ref, prior, ref_prior, n_classes):
        found, n_tests = [], 0
        for ci, ic in enumerate(items):
            counts = class_counts(ic.codes, y, len(ic.labels), n_classes)
            ref_counts = (None if ref is None else
                          class_counts(ic.ref_codes, ref.y, len(ic.labels), n_classes))
            support = counts.sum(axis=1)
            item, label = np.nonzero(counts > 0)
            n_tests += len(item)
            hits = counts[item, label]
            if ref_counts is None:
                p0 = self._p0(None, None, label, prior, None)
            else:
                p0 = self._p0(ref_counts[item, label], ref_counts.sum(axis=1)[item], label, prior, ref_prior)
            pv = stats.binom.sf(hits - 1, support[item], p0)
            keep = hits > support[item] * prior[label]  # enriched only; the rest are tested but not kept
            for i, c, h, pvalue in zip(item[keep], label[keep], hits[keep], pv[keep], strict=True):
                found.append(Candidate(((ci, int(i)),), int(c), int(support[i]), int(h), float(pvalue)))
        return found, n_tests

    def _pairs(self, items, singles, y, ref, prior, ref_prior, n_classes):
        p = self.params
        seeds = [c for c in singles if c.hits >= p["min_support"] and c.p_value <= PAIR_ITEM_ALPHA]
        seeds.sort(key=lambda c: (c.p_value, -c.hits))
        seeds = seeds[:p["max_pair_items"]]
        masks = {}
        for c in seeds:
            (ci, code), = c.items
            if (ci, code) not in masks:
                masks[(ci, code)] = items[ci].codes == code
        ref_masks = {}
        if ref is not None:
            for (ci, code) in masks:
                ref_masks[(ci, code)] = items[ci].ref_codes == code
        found, n_tests = [], 0
        for a in range(len(seeds)):
            for b in range(a + 1, len(seeds)):
                sa, sb = seeds[a], seeds[b]
                if sa.label != sb.label or items[sa.items[0][0]].column == items[sb.items[0][0]].column:
                    continue
                both = masks[sa.items[0]] & masks[sb.items[0]]
                support = int(both.sum())
                if support < p["min_support"]:
                    continue
                c = sa.label
                hits = int(np.count_nonzero(y[both] == c))
                n_tests += n_classes  # the pair was picked for c; count it as one test per label
                if ref is not None:
                    ref_both = ref_masks[sa.items[0]] & ref_masks[sb.items[0]]
                    p0 = float(self._p0(np.array([np.count_nonzero(ref.y[ref_both] == c)]),
                                        np.array([ref_both.sum()]), np.array([c]), prior, ref_prior)[0])
                else:
                    p0 = float(prior[c])
                pvalue = float(stats.binom.sf(hits - 1, support, p0))
                found.append(Candidate((sa.items[0], sb.items[0]), c, support, hits, pvalue))
        return found, n_tests

    # -- triggers -------------------------------------------------------------------
    def _group(self, chosen, items, y, analysis):
        """Merge overlapping candidates into triggers, most promising first.

        The `RANKED` purest candidates (Clopper-Pearson lower bound of the
        confidence) are ranked by how unlike their label their rows' nearest
        neighbours are (the shared k-NN graph, against the reference when
        given): a stamped trigger sits on rows of other classes, a legitimate
        strong value does not. A candidate joins the first group (same label)
        whose rows so far share half of the smaller row set; each group's lead is
        its most unlike member among those with at least half its largest
        row count."""
        lower = {id(c): confidence_lower(c.hits, c.support) for c in chosen}
        chosen = sorted(chosen, key=lambda c: (-lower[id(c)], -c.hits, len(c.items)))[:RANKED]
        if not chosen:
            return []
        ref = analysis.reference
        nb = analysis.neighbors("reference" if ref is not None else "self")
        neighbour_labels = (ref.y if ref is not None else y)[nb.indices]
        unlike = {}
        for cand in chosen:
            mask = np.ones(len(y), dtype=bool)
            for ci, code in cand.items:
                mask &= items[ci].codes == code
            cand.rows = np.flatnonzero(mask & (y == cand.label))
            unlike[id(cand)] = float(np.mean(neighbour_labels[cand.rows] != cand.label))
        chosen.sort(key=lambda c: (-unlike[id(c)], -lower[id(c)], -c.hits, len(c.items)))
        groups: list[list[Candidate]] = []
        unions: list[np.ndarray] = []
        for cand in chosen:
            for group, union in zip(groups, unions, strict=True):
                if group[0].label == cand.label and overlap(union, cand.rows) >= OVERLAP_MERGE:
                    group.append(cand)
                    break
            else:
                groups.append([cand])
                unions.append(cand.rows)
                continue
            at = groups.index(group)
            unions[at] = np.union1d(unions[at], cand.rows)
        leads = []
        for group in groups[:self.params["max_triggers"]]:
            # the lead: the most unlike member among those holding at least half
            # the group's largest row count (a sub-pattern of the trigger, e.g.
            # trigger & one common value, must not shrink it)
            largest = max(len(c.rows) for c in group)
            big = [c for c in group if len(c.rows) >= 0.5 * largest]
            leads.append(max(big, key=lambda c: (unlike[id(c)], lower[id(c)], c.hits)))
        return leads

    def _full_pattern(self, trigger, items, y, rows=None):
        """Most specific covering item per column (see module doc): the lead's
        items, each replaced by a narrower one of its column (an exact value
        inside a bin) that covers the rows as well."""
        rows = trigger.rows if rows is None else rows
        best: dict[str, tuple[int, int, int]] = {}  # column -> (support, item col, code)
        for ci, code in trigger.items:  # the lead's own columns always stay, maybe narrowed
            best[items[ci].column] = (int(np.count_nonzero(items[ci].codes == code)), ci, code)
        for ci, ic in enumerate(items):
            cover = np.bincount(ic.codes[rows][ic.codes[rows] >= 0], minlength=len(ic.labels))
            for code in np.flatnonzero(cover >= COVER_SHARE * len(rows)):
                support = int(np.count_nonzero(ic.codes == code))
                enriched = cover[code] / len(rows) >= COVER_ENRICHMENT * support / len(y)
                if enriched and (ic.column not in best or support < best[ic.column][0]):
                    best[ic.column] = (support, ci, int(code))
        order = sorted(best.values(), key=lambda t: (items[t[1]].column))
        return [(ci, code) for _, ci, code in order]

    def _assess(self, trigger, items, analysis, prior, n_classes) -> dict:
        p = self.params
        y = analysis.require_labels()
        pattern = self._full_pattern(trigger, items, y)
        blocks = column_blocks(analysis)
        used = {items[ci].column for ci, _ in pattern}
        keep = np.array([j for name, cols in blocks.items() if name not in used for j in cols], dtype=np.int64)
        rows = trigger.rows
        reclass = Reclassifier(p["max_train_rows"], p["random_state"])
        if analysis.reference is not None:
            result = reclass.run(analysis.reference.X, analysis.reference.y, analysis.batch.X[rows], n_classes,
                                 columns=keep)
        else:
            carrying = np.ones(len(y), dtype=bool)
            for ci, code in trigger.items:
                carrying &= items[ci].codes == code
            result = crossfit_reclassify(reclass, analysis.batch.X, y, carrying, rows, n_classes, keep)
        c = trigger.label
        unlike = int(np.count_nonzero(result.predicted != c))
        share = unlike / len(rows)
        base_rows = int(result.baseline_rows[c])
        base_wrong = int(round(result.baseline_error[c] * base_rows))
        p_unlike = excess_test(unlike, len(rows), base_wrong, base_rows)
        # the question needs a model that still knows class c without the pattern's columns:
        # when it errs on most held-out c rows, carriers looking unlike c is no evidence
        recognised = result.baseline_error[c] < p["min_unlike_share"]
        confirmed = share >= p["min_unlike_share"] and p_unlike <= p["alpha"] and recognised
        flagged, support, hits = rows, trigger.support, trigger.hits
        if confirmed:
            pattern, flagged, support, hits = self._refine(trigger, items, y, rows[result.predicted != c],
                                                           rows)
        classes = analysis.classes
        predicted = np.bincount(result.predicted, minlength=n_classes)
        predicted[c] = 0
        return {
            "pattern": [item_json(items[ci], code) for ci, code in pattern],
            "text": " & ".join(f"{items[ci].column} {items[ci].labels[code]}" for ci, code in pattern),
            "lead": " & ".join(f"{items[ci].column} {items[ci].labels[code]}" for ci, code in trigger.items),
            "label": plain(classes[c]),
            "label_code": c,
            "support": support,
            "rows": int(len(flagged)),
            "confidence": hits / support,
            "lift": hits / support / prior[c],
            "lead_rows": int(len(rows)),
            "lead_confidence": trigger.hits / trigger.support,
            "p_value": trigger.p_value,
            "q_value": trigger.q_value,
            "unlike_share": share,
            "unlike_p_value": p_unlike,
            "baseline_error": float(result.baseline_error[c]),
            "looks_like": plain(classes[int(predicted.argmax())]) if unlike else None,
            "confirmed": bool(confirmed),
            "row_positions": flagged,
        }

    def _refine(self, trigger, items, y, core, rows):
        """Name and flag a confirmed trigger from its core: the lead's rows that
        look like another class. The pattern is re-derived on the core (a lead
        bin may hold clean rows that hide an exact trigger value from the 90%
        cover rule) and the flagged rows are the label-c rows carrying all of
        it, unless that keeps under half of the lead's rows. The confirmation
        itself was decided on all lead rows, before this step. Returns the
        pattern, the flagged rows, and the pattern's support and hits."""
        if len(core) < self.params["min_support"]:
            core = rows
        pattern = self._full_pattern(trigger, items, y, core)
        carrying = np.ones(len(y), dtype=bool)
        for ci, code in pattern:
            carrying &= items[ci].codes == code
        flagged = np.flatnonzero(carrying & (y == trigger.label))
        if len(flagged) < 0.5 * len(rows):
            return pattern, rows, trigger.support, trigger.hits
        return pattern, flagged, int(carrying.sum()), int(len(flagged))

    def _result(self, reports, analysis, n_tests, n_chosen) -> SignalResult:
        n = analysis.batch.n
        scores = np.zeros(n)
        flags = np.zeros(n, dtype=bool)
        reasons = np.full(n, "", dtype=object)
        pattern_col = np.full(n, "", dtype=object)
        ids = analysis.batch.ids
        lines = []
        for r in reports:
            rows = r.pop("row_positions")
            strength = r["confidence"] * r["unlike_share"]
            better = strength > scores[rows]
            scores[rows[better]] = strength
            r["ids"] = sample_ids(ids, rows)
            if not r["confirmed"]:
                continue
            flags[rows] = True
            reason = f"carries trigger pattern {r['text']} -> label {r['label']!r}"
            fresh = rows[reasons[rows] == ""]
            reasons[fresh] = reason
            pattern_col[fresh] = r["text"]
            lines.append(console_line(r))
        confirmed = [r for r in reports if r["confirmed"]]
        if lines:
            lines.insert(0, f"Trigger patterns ({len(confirmed)} found):")
        summary = {
            "patterns": confirmed,
            "rejected": [r for r in reports if not r["confirmed"]],
            "candidates_tested": n_tests,
            "candidates_significant": n_chosen,
            "reference": analysis.reference is not None,
            "console_lines": lines,
        }
        return SignalResult(self.name, scores, flags, reasons, summary, {"trigger_pattern": pattern_col})
