-- model: "auto" (issue #15): the task the router saw, the rungs it tried (the
-- x-boundgate-route header), the top rung's estimated energy for the answer and the energy
-- right-sizing avoided (NULL / 0 for requests that named a model)
ALTER TABLE ledger ADD COLUMN task TEXT;
ALTER TABLE ledger ADD COLUMN route TEXT;
ALTER TABLE ledger ADD COLUMN counterfactual_wh REAL;
ALTER TABLE ledger ADD COLUMN rightsizing_avoided_wh REAL NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN rightsizing_avoided_gco2 REAL NOT NULL DEFAULT 0;
