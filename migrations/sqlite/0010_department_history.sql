-- A department that has held a case keeps its region: moves look up the case events
-- that name it (each event records the department the case had).
CREATE INDEX case_events_department ON case_events (detail->>'department');
