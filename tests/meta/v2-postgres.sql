-- A store written by the current release (schema 2: metadata MACs), before the lifecycle (issue 9):
-- COFFER_MASTER_KEY=TEST_MASTER_KEY (tests/testutil.h), coffer at 90684eb; put a x4, destroy a@2,
-- rotate-key, put a, put b, destroy a@5, put c, destroy c@1; then pg_dump --no-owner --no-privileges.
-- a: 1, 3, 4 enabled (latest 4), 2 and 5 destroyed; b: 1; c: nothing enabled.

--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

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

--
-- Name: coffer_header; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.coffer_header (
    id integer NOT NULL,
    store_id bytea NOT NULL,
    kdf_salt bytea NOT NULL,
    kdf_opslimit bigint NOT NULL,
    kdf_memlimit bigint NOT NULL,
    first_key_id bigint NOT NULL,
    meta_key bytea,
    CONSTRAINT coffer_header_id_check CHECK ((id = 1))
);


--
-- Name: coffer_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.coffer_keys (
    key_id bigint NOT NULL,
    sealed bytea NOT NULL
);


--
-- Name: coffer_meta; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.coffer_meta (
    id integer NOT NULL,
    schema_version integer NOT NULL,
    gen bigint NOT NULL,
    instance text DEFAULT md5(((random())::text || (clock_timestamp())::text)) NOT NULL,
    CONSTRAINT coffer_meta_id_check CHECK ((id = 1))
);


--
-- Name: coffer_secrets; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.coffer_secrets (
    id bigint NOT NULL,
    name text NOT NULL COLLATE pg_catalog."C",
    last_version bigint NOT NULL,
    latest bigint DEFAULT 0 NOT NULL,
    epoch bigint DEFAULT 0 NOT NULL,
    mac bytea,
    CONSTRAINT coffer_secrets_last_version_check CHECK ((last_version > 0))
);


--
-- Name: coffer_secrets_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.coffer_secrets_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: coffer_secrets_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.coffer_secrets_id_seq OWNED BY public.coffer_secrets.id;


--
-- Name: coffer_versions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.coffer_versions (
    secret_id bigint NOT NULL,
    version bigint NOT NULL,
    key_id bigint NOT NULL,
    state smallint DEFAULT 0 NOT NULL,
    created_ms bigint NOT NULL,
    sealed bytea NOT NULL,
    mac bytea NOT NULL,
    CONSTRAINT coffer_versions_version_check CHECK ((version > 0))
);
ALTER TABLE ONLY public.coffer_versions ALTER COLUMN sealed SET STORAGE EXTERNAL;


--
-- Name: coffer_secrets id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_secrets ALTER COLUMN id SET DEFAULT nextval('public.coffer_secrets_id_seq'::regclass);


--
-- Data for Name: coffer_header; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_header (id, store_id, kdf_salt, kdf_opslimit, kdf_memlimit, first_key_id, meta_key) FROM stdin;
1	\\xb217394db8a90214d1dee353d9636dfa	\\x17fe8a75551302407162196603522624	3	268435456	1	\\x01ac3e9b35451e2b3c857b391d22e59296ecc0664ed26a7c8be34d5c20b611df3ac9328013f5d96003ffb4fd7f8e01f60b2f0a731e53d0cfc4100d17e067bf9f7415f60a24b7324e24
\.


--
-- Data for Name: coffer_keys; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_keys (key_id, sealed) FROM stdin;
2	\\x01cc1061c53100c97333bef5a5b33163c82cfa0809e53fbbec40cd2610ceef00cffceb8fc5665f70a4ae886c078da61b17783a96007d1b31a0ef83da6f063d0f68bb513df6b69655a5
\.


--
-- Data for Name: coffer_meta; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_meta (id, schema_version, gen, instance) FROM stdin;
1	2	13	68d52beda41458641fca6d8f86217148
\.


--
-- Data for Name: coffer_secrets; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_secrets (id, name, last_version, latest, epoch, mac) FROM stdin;
6	b	1	1	0	\\x017597559acf3639ce2f2dc5a09d02cf04f3fc55eb3da5f8b78274fee172123e9e
1	a	5	4	2	\\x01ab3d3327eb2be71cf6382e870b8aec1c3f73b5160964c00b3e838ad338b8a7be
7	c	1	0	1	\\x01c2a4d1ea06ec93561f173267e052b9f9b181bc8d20e099e8cb220d542c337477
\.


--
-- Data for Name: coffer_versions; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_versions (secret_id, version, key_id, state, created_ms, sealed, mac) FROM stdin;
6	1	2	0	1796218193898	\\x01506f5be6dc3345304dc8507e1d4b7a3bfd12f1eb0aaf642f32c7b7cd7a2e4ed8bce1dd6806e00e6756b2f7ddd3a0	\\x014b8bb4f5b99497e614309300d33f0656d295e07cc7fbd8d21aa4cb048468283a
1	1	2	0	1796218193553	\\x01982ba9e5be20fc36faab89a25bb416ea473aa80de7c39ea70f9908ddebc775e939e2490f87408882c4ad6ed30f39f4	\\x0162ed18666f2d9dc645b56dd8b7e7fe09f6f5340b094f1fab760b419fdde61db0
1	2	1	1	1796218193601	\\x	\\x01e4658cac44f9aad57f439495d84aef2624cce709968246301ed50c5c79d1026d
1	3	2	0	1796218193656	\\x0107650fd82e80b6f2662aa5a3956ee37f83335cc28f0b598dfdb9ff8353ea98d90a5b1bb0a91ad97c324f26c53802b3	\\x0106917ca09662532753251002e948241355a1f75ca7533c8b3300a01bf6b4bb8c
1	4	2	0	1796218193697	\\x016994685121b9aaa5e918cab7b05232f077e0231f729c750dc9cd64d8960c2d5ced81770e9bc3eeb1696cf0b2428160	\\x01da76a4aae4bc4952fd6b1d0b0dd553f426cf2b601ba946c4b85615f392ae5313
1	5	2	1	1796218193841	\\x	\\x018a455488ec61ee8a4eb19a28b3a9161f8449faf041e15ebd9e1d5a0530814a16
7	1	2	1	1796218194001	\\x	\\x01d59fe2b9e7675d97ccdf0f446c4440884e8c70605e222c6f13aa0bb534111b59
\.


--
-- Name: coffer_secrets_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.coffer_secrets_id_seq', 7, true);


--
-- Name: coffer_header coffer_header_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_header
    ADD CONSTRAINT coffer_header_pkey PRIMARY KEY (id);


--
-- Name: coffer_keys coffer_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_keys
    ADD CONSTRAINT coffer_keys_pkey PRIMARY KEY (key_id);


--
-- Name: coffer_meta coffer_meta_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_meta
    ADD CONSTRAINT coffer_meta_pkey PRIMARY KEY (id);


--
-- Name: coffer_secrets coffer_secrets_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_secrets
    ADD CONSTRAINT coffer_secrets_name_key UNIQUE (name);


--
-- Name: coffer_secrets coffer_secrets_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_secrets
    ADD CONSTRAINT coffer_secrets_pkey PRIMARY KEY (id);


--
-- Name: coffer_versions coffer_versions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_versions
    ADD CONSTRAINT coffer_versions_pkey PRIMARY KEY (secret_id, version);


--
-- Name: coffer_versions coffer_versions_secret_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_versions
    ADD CONSTRAINT coffer_versions_secret_id_fkey FOREIGN KEY (secret_id) REFERENCES public.coffer_secrets(id);


--
-- PostgreSQL database dump complete
--


