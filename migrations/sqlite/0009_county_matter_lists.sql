-- Art. 10: the city keeps a matters list and each county keeps its own, which applies
-- in that county. A version belongs to the list of `region_code`: a county's code, or
-- the city's (empty for rows older than county lists, which were all the city's).
ALTER TABLE matter_versions ADD COLUMN region_code text NOT NULL DEFAULT '';
