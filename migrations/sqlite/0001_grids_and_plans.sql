-- The embedded store: the same tables as migrations/postgres, geometry as WKB blobs
-- (CGCS2000 lon/lat), dates as ISO 8601 text, JSON as text.


CREATE TABLE regions (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    level       text NOT NULL CHECK (level IN ('city', 'county', 'township', 'community')),
    parent_code text,
    boundary    blob
);
CREATE INDEX regions_parent ON regions (parent_code);

CREATE TABLE plans (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    scope_code     text NOT NULL,
    layer          text NOT NULL CHECK (layer IN ('comprehensive', 'dedicated')),
    title          text NOT NULL,
    status         text NOT NULL CHECK (status IN
                     ('draft', 'submitted', 'approved', 'active', 'superseded', 'rejected')),
    effective_date text,
    created_by     text NOT NULL,
    created_at     text NOT NULL,
    updated_at     text NOT NULL,
    error_count    integer NOT NULL,
    warning_count  integer NOT NULL,
    validation     text NOT NULL
);
CREATE INDEX plans_scope ON plans (scope_code, layer);

-- Who moved a plan from one status to the next, when and why.
CREATE TABLE plan_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id     integer NOT NULL REFERENCES plans (id),
    from_status text,
    to_status   text NOT NULL,
    actor       text NOT NULL,
    at          text NOT NULL,
    reason      text
);
CREATE INDEX plan_events_plan ON plan_events (plan_id);

-- The grids a plan proposes, with the codes they will carry.
CREATE TABLE plan_grids (
    plan_id     integer NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    code        text NOT NULL,
    name        text,
    parent_code text NOT NULL,
    boundary    blob NOT NULL,
    households  integer,
    attributes  text NOT NULL,
    -- Bounding box, copied into grid_versions_bbox on activation.
    min_x       real NOT NULL,
    max_x       real NOT NULL,
    min_y       real NOT NULL,
    max_y       real NOT NULL,
    PRIMARY KEY (plan_id, seq)
);

-- How each proposed grid relates to the current ones (unchanged, modified, split,
-- merged, new, retired), with the area that moves.
CREATE TABLE plan_lineage (
    plan_id   integer NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    from_code text,
    to_code   text,
    kind      text NOT NULL,
    area_m2   real NOT NULL
);
CREATE INDEX plan_lineage_plan ON plan_lineage (plan_id);

-- The generation of each community's grids per layer when a plan was drawn; activation
-- bumps it only if it is unchanged, which is how two racing activations are told apart.
CREATE TABLE plan_bases (
    plan_id        integer NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    community_code text NOT NULL,
    generation     integer NOT NULL,
    PRIMARY KEY (plan_id, community_code)
);

CREATE TABLE layer_heads (
    community_code text NOT NULL,
    layer          text NOT NULL,
    generation     integer NOT NULL,
    PRIMARY KEY (community_code, layer)
);

CREATE TABLE grid_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    code        text NOT NULL,
    name        text,
    layer       text NOT NULL,
    parent_code text NOT NULL,
    boundary    blob NOT NULL,
    households  integer,
    attributes  text NOT NULL,
    valid_from  text NOT NULL,
    valid_to    text,
    plan_id     integer REFERENCES plans (id),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX grid_versions_current_code ON grid_versions (code) WHERE valid_to IS NULL;
CREATE INDEX grid_versions_code ON grid_versions (code);
CREATE INDEX grid_versions_parent ON grid_versions (parent_code, layer) WHERE valid_to IS NULL;
-- Bounding boxes of every grid version (as_of lookups filter here, then test exactly).
CREATE VIRTUAL TABLE grid_versions_bbox USING rtree (id, min_x, max_x, min_y, max_y);

-- Lineage of activated plans, kept for statistics and open cases.
CREATE TABLE grid_lineage (
    plan_id   integer NOT NULL REFERENCES plans (id),
    from_code text,
    to_code   text,
    kind      text NOT NULL,
    area_m2   real NOT NULL
);
CREATE INDEX grid_lineage_from ON grid_lineage (from_code);
CREATE INDEX grid_lineage_to ON grid_lineage (to_code);

-- Grid members and service-team members (Art. 7). scope_code is a grid's code or a
-- region's code (service teams belong to communities/villages).
CREATE TABLE members (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    scope_code    text NOT NULL,
    role          text NOT NULL CHECK (role IN
                    ('grid_leader', 'full_time', 'part_time', 'instructor', 'team_member')),
    name          text NOT NULL,
    phone         text,
    duty_schedule text NOT NULL
);
CREATE INDEX members_scope ON members (scope_code);

-- The supervision phone published on a grid's card, per grid or per region.
CREATE TABLE supervision_phones (
    scope_code text PRIMARY KEY,
    phone      text NOT NULL
);
