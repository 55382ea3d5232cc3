"""The Spark engine: score a table that outgrows one machine with the same
signals and the same profile, partition by partition.

How the work is split (see `engine.py`):

* The trusted side is a stored profile (`poison-check fit`), or a profile
  fitted on the driver from a reference table, or, in a self-check, from a
  bounded random sample of the batch. Its bytes are captured in the
  `mapInPandas` closure (no broadcast: Spark Connect has none); each Python
  worker loads it once (`scoring.py`).
* Each partition is scored by the core: an `Analysis` against the profile,
  each per-row signal's `score`, its batch scores on the scale of
  `reference_scores`, conformal p-values against them (within the row's
  class where the signal's `calibration` is "class"), and the combination
  (`verdicts.combine`) of a row's p-values.
* The driver decides from small aggregates only (`decide.py`): the row
  count, each signal's p-values <= its alpha0 (Higher Criticism and the closed-testing bound
  per signal, the Benjamini-Hochberg threshold of the combined p-value),
  group counts and per-source counts from `groupBy`. It never collects the
  table; it holds O(rows) float64 arrays (the p-values padded with ones) for
  the batch tests only.

Where the Spark result is an approximation of the pandas one:

1. Signals run: the per-row signals (label consistency, outliers,
   influence), whose `score` reads nothing but the row and the trusted side,
   and the batch families of `batch.py`: spectral signatures and feature
   clustering (split conformal, `structure.py`) and trigger patterns
   (`triggers.py`). Near duplicates, clean-label collisions and sources need
   within-batch structure this engine does not build yet; they are not run
   (listed as skipped in the report).
2. Row scores: equal to the pandas engine's `score` against the same
   profile for outliers and influence (fold model and tie placement drawn
   by hashing the row's values; small classes ranked among their trusted
   rows, never among the chunk's); label consistency within Spearman
   0.999 of it (iris in 3 chunks). Rows are flagged from the p-values of
   the whole batch (BH), never from per-chunk flags.
3. Conformal p-values: the same formula; the random tie-break U_j is drawn
   per partition (seeded by the partition id), so a row's p-value differs
   from the in-process one by at most 1 / (n_ref + 1); ties inside a
   partition are shuffled together ("shared"), ties across partitions
   independently (same marginal law; the joint law differs only with ties).
4. Self-check: the profile is fitted on a random sample of at most
   `sample_rows` batch rows; every batch row (the sampled ones included,
   which are then scored against a trusted side that contains them) is
   scored against it. The pandas self-check scores each row out of fold
   instead.
5. Decisions: the config's `verdicts` levels as in the pandas checkpoint
   (BH at q on the combined p-values; per signal a Higher Criticism gate and
   the closed-testing lower bound at alpha / F over min_effect), where F
   counts only the signals this engine runs.
6. Row ids: without an id column, `row_index` is the row's position in the
   order Spark reads (partition offsets from a count per partition): the
   pandas engine's 0-based index for one file, but for a folder Spark orders
   the files by size, so there it is a numbering that differs from the
   pandas engine's. Give an id column. Ids are not checked for uniqueness
   across partitions.
7. Monte Carlo null of Higher Criticism: simulated for the groups in key
   order (classes by code, then the pooled group), so its p-value can differ
   from an in-process run that met the classes in another order by the
   simulation's own noise (the test stays exactly valid).
8. Spectral signatures and feature clustering: the split halves are a fair
   coin per row (Spark's `rand(seed)`, persisted with the scored table), not
   the pandas engine's exact half of a permutation: both are independent of
   the data, so the split-conformal p-values stay exactly valid, but the
   halves differ, so row p-values are other draws of the same law (on the
   1,500-row embedding backdoor test both engines fail the same gates with
   lower bounds within a few rows; clean rows' p-values do not correlate
   between engines, as two pandas runs with other halves would not). Given
   the halves the computation is the core's: spectral directions from exact
   float64 class sums per half (the core's `_direction` up to rounding:
   tested to the conformal interval), 2-means on a uniform sample of at most
   `max_fit_rows` rows of the half (the core samples as many; all rows when
   the half is smaller). The score columns differ by design: `spectral_score`
   is tau on the whole batch class's direction over the class's largest tau
   for every class of >= 20 rows (the pandas engine gives that only to
   classes whose tail test separates, 0 elsewhere; equal there to 1e-4);
   `feature_clustering_score` is the split pull (d_large - d_small) /
   (d_large + d_small) mapped to [0, 1] (the pandas engine scores only the
   members of a confirmed small cluster). The gate omits Storey's
   `estimated_share` (it needs every p-value). Their p-values enter `poison_p` (so BH
   flags), but `poison_score` ranks by the per-row families' ranking
   p-values only.
9. Trigger patterns: the core's search runs on the driver on the whole batch
   up to `triggers.SEARCH_ROWS` rows, else on a uniform random sample of that
   many (fewer carrying rows: a rarer trigger can be missed); its confirmed
   patterns flag, on the executors, every row of the batch that carries the
   pattern with its label (the core keeps the lead's rows instead when the
   refined pattern holds under half of them), and their support is counted
   over the whole batch.
10. Not run on Spark: the reputation ledger (after-run hooks), GX Data Docs,
   the HTML report; `limits.max_rows` does not apply.
"""
