-- A resident's report carries a short secret, handed back once when it is made, that
-- opens the report's public status page with its steps (the number alone shows only
-- what Open311 shows everyone). Internal cases have none.
ALTER TABLE cases ADD COLUMN follow_up_key text;
