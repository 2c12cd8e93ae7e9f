-- Dispatch (Art. 10-12): departments, the versioned matters list, the working-day
-- calendar, cases with an append-only event trail, and a webhook outbox.
-- Case times are epoch milliseconds (bigint) in both backends, so one SQL text orders
-- and compares them the same way; views for people reading the database directly can
-- use to_timestamp(x / 1000.0).

CREATE TABLE departments (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL,
    region_code text NOT NULL,
    webhook_url text
);
CREATE UNIQUE INDEX departments_kind_region ON departments (kind, region_code);

CREATE TABLE department_staff (
    user_name       text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    department_code text NOT NULL REFERENCES departments (code) ON DELETE CASCADE,
    PRIMARY KEY (user_name, department_code)
);

-- One row per version of a matter; a change is a new version, never an edit, so cases
-- filed under an old version keep its time limit and department.
CREATE TABLE matter_versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    code        text NOT NULL,
    version     integer NOT NULL,
    name        text NOT NULL,
    description text NOT NULL,
    category    text NOT NULL,
    responsible text NOT NULL,
    limit_amount integer NOT NULL CHECK (limit_amount > 0),
    limit_unit  text NOT NULL CHECK (limit_unit IN ('working_hours', 'working_days')),
    public      integer NOT NULL,
    valid_from  text NOT NULL,
    valid_to    text,
    status      text NOT NULL CHECK (status IN ('proposed', 'admitted', 'refused')),
    proposed_by text NOT NULL,
    decided_by  text,
    decided_at  bigint,
    UNIQUE (code, version)
);

CREATE TABLE calendar_days (
    day  text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('holiday', 'workday')),
    note text NOT NULL
);

CREATE TABLE cases (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    state           text NOT NULL,
    source          text NOT NULL,
    matter_code     text,
    matter_version  bigint REFERENCES matter_versions (id),
    category        text,
    description     text NOT NULL,
    photos          text NOT NULL,
    address         text,
    lon             real NOT NULL,
    lat             real NOT NULL,
    coord_sys       text NOT NULL,
    grid_code       text NOT NULL,
    community_code  text NOT NULL,
    township_code   text NOT NULL,
    county_code     text NOT NULL,
    city_code       text NOT NULL,
    near_boundary   integer NOT NULL,
    neighbour_grid  text,
    outside         integer NOT NULL,
    reporter        text,
    reporter_name   text,
    reporter_phone  text,
    reporter_email  text,
    centre_code     text NOT NULL,
    department_code text REFERENCES departments (code),
    deadline        bigint,
    assigned_at     bigint,
    extension_request text,
    merged_into     bigint REFERENCES cases (id),
    returns         integer NOT NULL DEFAULT 0,
    extensions      integer NOT NULL DEFAULT 0,
    supervisions    integer NOT NULL DEFAULT 0,
    escalations     integer NOT NULL DEFAULT 0,
    verification_failures integer NOT NULL DEFAULT 0,
    due_soon_noticed integer NOT NULL DEFAULT 0,
    overdue_noticed integer NOT NULL DEFAULT 0,
    reported_at     bigint NOT NULL,
    updated_at      bigint NOT NULL,
    closed_at       bigint,
    version         bigint NOT NULL DEFAULT 1,
    -- '<who>:<key>' of an idempotent submission, with a hash of its request.
    idempotency_key text UNIQUE,
    request_hash    text
);
-- The dispatcher's lists: by area and state, newest by id or soonest deadline first
-- (lists query one state per branch, so each branch walks one of these in order);
-- the deadline sweep by state and deadline.
CREATE INDEX cases_township_id ON cases (township_code, state, id);
CREATE INDEX cases_township_deadline ON cases (township_code, state, deadline);
CREATE INDEX cases_county_id ON cases (county_code, state, id);
CREATE INDEX cases_county_deadline ON cases (county_code, state, deadline);
CREATE INDEX cases_department ON cases (department_code, state, deadline);
CREATE INDEX cases_state_deadline ON cases (state, deadline);
CREATE INDEX cases_grid ON cases (grid_code, reported_at);
CREATE INDEX cases_reporter ON cases (reporter) WHERE reporter IS NOT NULL;

CREATE TABLE case_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id    bigint NOT NULL REFERENCES cases (id),
    at         bigint NOT NULL,
    actor      text NOT NULL,
    kind       text NOT NULL,
    from_state text,
    to_state   text NOT NULL,
    note       text,
    detail     text NOT NULL
);
CREATE INDEX case_events_case ON case_events (case_id, id);
CREATE INDEX case_events_at ON case_events (at);

CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events
BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END;
CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events
BEGIN SELECT RAISE(ABORT, 'case_events is append-only'); END;

-- Outbox: queued in the transaction of the event, sent by the server afterwards,
-- retried until delivered.
CREATE TABLE webhook_deliveries (
    event_id        bigint NOT NULL REFERENCES case_events (id),
    department_code text NOT NULL REFERENCES departments (code),
    attempts        integer NOT NULL DEFAULT 0,
    next_at         bigint NOT NULL,
    delivered_at    bigint,
    last_error      text,
    PRIMARY KEY (event_id, department_code)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE delivered_at IS NULL;
