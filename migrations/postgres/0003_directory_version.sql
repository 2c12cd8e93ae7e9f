-- A counter that grows with every change to members or supervision phones, so replicas
-- that cache them (the locate snapshot) notice changes made elsewhere.
CREATE TABLE directory_version (
    id      integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO directory_version VALUES (1, 0);

CREATE FUNCTION directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE directory_version SET version = version + 1 WHERE id = 1;
    -- Listening replicas reload at commit, as after an activation.
    PERFORM pg_notify('wangge_grids', 'directory');
    RETURN NULL;
END $$;
CREATE TRIGGER members_changed AFTER INSERT OR UPDATE OR DELETE ON members
    FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
CREATE TRIGGER supervision_phones_changed AFTER INSERT OR UPDATE OR DELETE ON supervision_phones
    FOR EACH STATEMENT EXECUTE FUNCTION directory_changed();
