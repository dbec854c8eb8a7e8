-- the pair model's score of a labelled candidate (NULL: scored before the pair model)
ALTER TABLE reuse_observations ADD COLUMN pair_score REAL;
-- questions confirmed (by sampled verification) to mean what a stored entry answers: an
-- arrival of one of them is an exact hit on that entry
CREATE TABLE reuse_question_variants (
    exact TEXT PRIMARY KEY,
    entry INTEGER NOT NULL,
    query TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX reuse_question_variants_entry ON reuse_question_variants (entry);
