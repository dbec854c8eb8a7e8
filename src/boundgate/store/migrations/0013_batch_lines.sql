-- Checkpoints of running batches: each finished line is kept until the batch's output and
-- error files are written, so a runner that takes over a batch whose process died goes on
-- from the lines left instead of serving every line again.
CREATE TABLE batch_lines (
    batch_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    kind TEXT NOT NULL,
    record TEXT NOT NULL,
    energy_wh REAL NOT NULL,
    carbon_g REAL NOT NULL,
    avoided_wh REAL NOT NULL,
    PRIMARY KEY (batch_id, line)
);
