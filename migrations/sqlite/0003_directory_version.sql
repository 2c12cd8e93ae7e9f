-- A counter that grows with every change to members or supervision phones, so replicas
-- that cache them (the locate snapshot) notice changes made elsewhere.
CREATE TABLE directory_version (
    id      integer PRIMARY KEY CHECK (id = 1),
    version integer NOT NULL
);
INSERT INTO directory_version VALUES (1, 0);

CREATE TRIGGER members_inserted AFTER INSERT ON members
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER members_updated AFTER UPDATE ON members
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER members_deleted AFTER DELETE ON members
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER phones_inserted AFTER INSERT ON supervision_phones
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER phones_updated AFTER UPDATE ON supervision_phones
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER phones_deleted AFTER DELETE ON supervision_phones
BEGIN UPDATE directory_version SET version = version + 1 WHERE id = 1; END;
