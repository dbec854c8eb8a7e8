-- A file deleted (DELETE /v1/files/{id}) while an unfinished batch reads it as its input is
-- hidden, not dropped: the batch runs on from it after a hand-back or a restart (a break-it
-- trial lost 29 accepted lines when a run resumed and found its input gone). `deleted` is
-- when it was deleted (epoch s); the row goes once no unfinished batch names it.
ALTER TABLE files ADD COLUMN deleted REAL;
