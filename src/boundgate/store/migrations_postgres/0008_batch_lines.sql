-- Checkpoints of running batches (SQLite's 0013): each finished line is kept until the
-- batch's output and error files are written, so a replica that takes over a batch whose
-- replica died goes on from the lines left instead of serving every line again.
CREATE TABLE batch_lines (
    batch_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    kind TEXT NOT NULL,
    record TEXT NOT NULL,
    energy_wh DOUBLE PRECISION NOT NULL,
    carbon_g DOUBLE PRECISION NOT NULL,
    avoided_wh DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (batch_id, line)
);
