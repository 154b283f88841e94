-- A store written by coffer before metadata MACs (schema 1), made with the previous release:
-- COFFER_MASTER_KEY=TEST_MASTER_KEY (tests/testutil.h); put a x4, destroy a@2, rotate-key,
-- put a, put b, destroy a@5, put c, destroy c@1; then pg_dump --no-owner --no-privileges.
-- a: 1, 3, 4 enabled (latest 4), 2 and 5 destroyed; b: 1; c: nothing enabled.

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.coffer_header (
    id integer NOT NULL,
    store_id bytea NOT NULL,
    kdf_salt bytea NOT NULL,
    kdf_opslimit bigint NOT NULL,
    kdf_memlimit bigint NOT NULL,
    first_key_id bigint NOT NULL,
    CONSTRAINT coffer_header_id_check CHECK ((id = 1))
);

CREATE TABLE public.coffer_keys (
    key_id bigint NOT NULL,
    sealed bytea NOT NULL
);

CREATE TABLE public.coffer_meta (
    id integer NOT NULL,
    schema_version integer NOT NULL,
    gen bigint NOT NULL,
    instance text DEFAULT md5(((random())::text || (clock_timestamp())::text)) NOT NULL,
    CONSTRAINT coffer_meta_id_check CHECK ((id = 1))
);

CREATE TABLE public.coffer_secrets (
    id bigint NOT NULL,
    name text NOT NULL COLLATE pg_catalog."C",
    last_version bigint NOT NULL,
    CONSTRAINT coffer_secrets_last_version_check CHECK ((last_version > 0))
);

CREATE SEQUENCE public.coffer_secrets_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.coffer_secrets_id_seq OWNED BY public.coffer_secrets.id;

CREATE TABLE public.coffer_versions (
    secret_id bigint NOT NULL,
    version bigint NOT NULL,
    key_id bigint NOT NULL,
    state smallint DEFAULT 0 NOT NULL,
    created_ms bigint NOT NULL,
    sealed bytea NOT NULL,
    CONSTRAINT coffer_versions_version_check CHECK ((version > 0))
);
ALTER TABLE ONLY public.coffer_versions ALTER COLUMN sealed SET STORAGE EXTERNAL;

ALTER TABLE ONLY public.coffer_secrets ALTER COLUMN id SET DEFAULT nextval('public.coffer_secrets_id_seq'::regclass);

COPY public.coffer_header (id, store_id, kdf_salt, kdf_opslimit, kdf_memlimit, first_key_id) FROM stdin;
1	\\xb14546a1f15d50468e50919046ec00c6	\\xd7043cfa6431e166429784e709042e83	3	268435456	1
\.

COPY public.coffer_keys (key_id, sealed) FROM stdin;
2	\\x014380ac45743ccb85f6411ed24bc6a86b00be7c0a071a9b18f370b2685c9aec37db289eeec5fe41a203dd1b092ba6d32f3dcd9cc93ffa8d60cc91be2d0f648c8c21e7043e40579181
\.

COPY public.coffer_meta (id, schema_version, gen, instance) FROM stdin;
1	1	13	25ee53c44159f08e5651ed066d6e6693
\.

COPY public.coffer_secrets (id, name, last_version) FROM stdin;
1	a	5
6	b	1
7	c	1
\.

COPY public.coffer_versions (secret_id, version, key_id, state, created_ms, sealed) FROM stdin;
1	2	1	1	1796180666963	\\x
1	1	2	0	1796180666923	\\x01bd15ba8d4069237813dda27ce3545bffcc082927bf19008625e07377dda590421f315ee3e56d480da104dd36e660f0
1	3	2	0	1796180666999	\\x019b8f7e398b44f3819727eb80e34843cd990dbd815113973c37936ad7205184a2387929566da706f23284d246346d8f
1	4	2	0	1796180667036	\\x01418816e39bd82daf3671ebb2f78e3dc5c57fa200a280f97e3ebf063563aaffd884fd7876edeb3dc77326a0df91cfd8
6	1	2	0	1796180667211	\\x01b8ef35d872f6e7ab72270a25ad79e5ae8300e6325e301bc47899eb14189d5039fe624d00a7c6b6463dd246c2ee20
1	5	2	1	1796180667168	\\x
7	1	2	1	1796180667284	\\x
\.

SELECT pg_catalog.setval('public.coffer_secrets_id_seq', 7, true);

ALTER TABLE ONLY public.coffer_header
    ADD CONSTRAINT coffer_header_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.coffer_keys
    ADD CONSTRAINT coffer_keys_pkey PRIMARY KEY (key_id);

ALTER TABLE ONLY public.coffer_meta
    ADD CONSTRAINT coffer_meta_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.coffer_secrets
    ADD CONSTRAINT coffer_secrets_name_key UNIQUE (name);

ALTER TABLE ONLY public.coffer_secrets
    ADD CONSTRAINT coffer_secrets_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.coffer_versions
    ADD CONSTRAINT coffer_versions_pkey PRIMARY KEY (secret_id, version);

ALTER TABLE ONLY public.coffer_versions
    ADD CONSTRAINT coffer_versions_secret_id_fkey FOREIGN KEY (secret_id) REFERENCES public.coffer_secrets(id);

