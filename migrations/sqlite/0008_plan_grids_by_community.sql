-- Activation refuses a plan that leaves a community of its scope without grids
-- (store::rules::FIRST_UNCOVERED_BASE): one lookup per community. Without this index
-- each lookup scanned the plan's grids: 1.2 s for the demo's 337 communities on SQLite.
CREATE INDEX plan_grids_parent ON plan_grids (plan_id, parent_code);
