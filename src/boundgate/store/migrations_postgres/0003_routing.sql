-- model: "auto" (issue #15); as SQLite's 0010_routing.sql
ALTER TABLE ledger ADD COLUMN task TEXT;
ALTER TABLE ledger ADD COLUMN route TEXT;
ALTER TABLE ledger ADD COLUMN counterfactual_wh DOUBLE PRECISION;
ALTER TABLE ledger ADD COLUMN rightsizing_avoided_wh DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN rightsizing_avoided_gco2 DOUBLE PRECISION NOT NULL DEFAULT 0;
