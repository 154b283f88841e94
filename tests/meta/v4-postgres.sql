-- A store written by the release before per-secret invalidation (schema 4: declarations), made
-- with COFFER_MASTER_KEY=TEST_MASTER_KEY (tests/testutil.h), coffer at d82045c (= main 166b1f9, the
-- backend split into files); put a x4, destroy a@2, rotate-key, put a, put b, destroy a@5, put c,
-- destroy c@1; then pg_dump --no-owner --no-privileges.
-- a: 1, 3, 4 enabled (latest 4), 2 and 5 destroyed; b: 1; c: nothing enabled.

--
-- PostgreSQL database dump
--

\restrict wBHeIXpUTPtSDec2CFJvGmdiiyi8N0IaiY3ibcWsh5tVzf1oMbqal1a5odiKE60

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
-- Name: coffer_audit; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.coffer_audit (
    id bigint NOT NULL,
    chain text NOT NULL,
    seq bigint NOT NULL,
    ts_ms bigint NOT NULL,
    principal text NOT NULL,
    action text NOT NULL,
    secret text NOT NULL,
    version text NOT NULL,
    outcome integer NOT NULL,
    error text NOT NULL,
    rid text NOT NULL,
    mac bytea NOT NULL
);


--
-- Name: coffer_audit_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.coffer_audit_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: coffer_audit_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.coffer_audit_id_seq OWNED BY public.coffer_audit.id;


--
-- Name: coffer_declarations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.coffer_declarations (
    service text NOT NULL COLLATE pg_catalog."C",
    secret text NOT NULL COLLATE pg_catalog."C",
    actions integer NOT NULL,
    declared_ms bigint NOT NULL
);


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
-- Name: coffer_labels; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.coffer_labels (
    secret_id bigint NOT NULL,
    name text NOT NULL COLLATE pg_catalog."C",
    version bigint NOT NULL
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
-- Name: coffer_requests; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.coffer_requests (
    secret_id bigint NOT NULL,
    rid bytea NOT NULL,
    vhash bytea NOT NULL,
    version bigint NOT NULL,
    created_ms bigint NOT NULL
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
    max_versions bigint DEFAULT 0 NOT NULL,
    previous bigint DEFAULT 0 NOT NULL,
    ldigest bytea,
    purge_ms bigint DEFAULT 0 NOT NULL,
    description text,
    tags text,
    created_ms bigint DEFAULT 0 NOT NULL,
    updated_ms bigint DEFAULT 0 NOT NULL,
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
-- Name: coffer_audit id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_audit ALTER COLUMN id SET DEFAULT nextval('public.coffer_audit_id_seq'::regclass);


--
-- Name: coffer_secrets id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_secrets ALTER COLUMN id SET DEFAULT nextval('public.coffer_secrets_id_seq'::regclass);


--
-- Data for Name: coffer_audit; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_audit (id, chain, seq, ts_ms, principal, action, secret, version, outcome, error, rid, mac) FROM stdin;
1	3cf21cb6e90323f2	1	1796230760136	cli:root	put	a	1	0			\\x0106a39bee4300dd3ab38ccc3c59f491c0d6694be0109dbe44eff747bce88ebb1f
2	c5894699ada99c42	1	1796230760429	cli:root	put	a	2	0			\\x01fb465416c3c08b63df929f3a616caf983541bf6c7d25fd02f55970d35d7c9876
3	b78ced52c96ea1e5	1	1796230760697	cli:root	put	a	3	0			\\x017d73f51eb1da02eb88ff74150a54edab30a58aab7e7588a672acf321532fde91
4	d11c71d73a07a984	1	1796230761298	cli:root	put	a	4	0			\\x019ce78bfb1fafa44b475fcb46d534875ed97c4996d3b7661c7a522d33f70116b4
5	8e51cc151ac34c03	1	1796230761667	cli:root	destroy	a	2	0			\\x019e0959b5253c95b84ff75f72157db7d9ee2fb170a48466b41885d58c88d4e672
6	86a05efaa322fce3	1	1796230761913	cli:root	reencrypt			0			\\x0159bd4fbf8e604cea5132041ffba5d4bca930c60936a56c0789c6d8da82b47f2f
7	86a05efaa322fce3	2	1796230761935	cli:root	rotate-key		key 2	0			\\x01d9a58f7df1814aa7132aafa40bc22c935862a269720da2f8756657cb7adb27a3
8	86a05efaa322fce3	3	1796230761959	cli:root	reencrypt			0			\\x017008e5c2c456943d5294664ecc8eff8aee4e91c598599463af20c100a5f8aad3
9	53b7ea0d80769608	1	1796230762354	cli:root	put	a	5	0			\\x01872f320cba3f21cc90a50030124302c070814e0f0b4a3882f164a6f59b17f835
10	e80663ace2f88071	1	1796230762652	cli:root	put	b	1	0			\\x01fa19556e975461839071ddc530064dbf8f2e495a8015afc550fec2894653d3e8
11	66eaa75761117b00	1	1796230762996	cli:root	destroy	a	5	0			\\x01863e98cfc401e6acd611bd219c3e7abb7ddecfa2e016d6898a6d2cd8c373b95e
12	8037c75ee585b83d	1	1796230763470	cli:root	put	c	1	0			\\x01a350159dcde20b99d92fcf9994426c2c431d2f6f738680db3744ac01afc2f35c
13	d861b6bde9b54f97	1	1796230763883	cli:root	destroy	c	1	0			\\x01acefa1933567ee5f7896e2502f93ab717d7896d55617aa4ef293a8c140d1ff70
\.


--
-- Data for Name: coffer_declarations; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_declarations (service, secret, actions, declared_ms) FROM stdin;
\.


--
-- Data for Name: coffer_header; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_header (id, store_id, kdf_salt, kdf_opslimit, kdf_memlimit, first_key_id, meta_key) FROM stdin;
1	\\x197b549ad5ab4c5358fa56a58cf190ef	\\xaf5fc359a6b622585f149c27437096f7	3	268435456	1	\\x011cbfa808de3b7be4af2ab4f3c68dff6e928b8a3991f8849ef1188057545370fec5f0c02261ecb23d38c54bf8728c9ec8c301bedcb82c70247000981257d435f54bf275e13b889e6f
\.


--
-- Data for Name: coffer_keys; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_keys (key_id, sealed) FROM stdin;
2	\\x0197f940f282a69bd11aed3276d227ed2190af378d33909a09e8524fdec831cd04382838dd3e02665b01fd41781d57ea2cf752e761ead2d01d4e870c00d4769af9ec0f18e320f66532
\.


--
-- Data for Name: coffer_labels; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_labels (secret_id, name, version) FROM stdin;
\.


--
-- Data for Name: coffer_meta; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_meta (id, schema_version, gen, instance) FROM stdin;
1	4	13	f32b8a236d658b02292512026dc420dc
\.


--
-- Data for Name: coffer_requests; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_requests (secret_id, rid, vhash, version, created_ms) FROM stdin;
\.


--
-- Data for Name: coffer_secrets; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_secrets (id, name, last_version, latest, epoch, mac, max_versions, previous, ldigest, purge_ms, description, tags, created_ms, updated_ms) FROM stdin;
6	b	1	1	0	\\x01adb1d0c71d5be53a3e8bec7f665b4312960b6a1f2d7a237b46bc56e5615415f7	0	0	\N	0	\N	\N	1796230762625	1796230762625
1	a	5	4	2	\\x01d2e5355bfccaf5bf02ead834b0508291efcde67c744f37b321a0eb32ffa84e79	0	4	\N	0	\N	\N	1796230760134	1796230762994
7	c	1	0	1	\\x0148265af6afe8578c7238d9c6484d1a4ed811192fa6f7bf1b94cbf9358579a02e	0	0	\N	0	\N	\N	1796230763446	1796230763851
\.


--
-- Data for Name: coffer_versions; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.coffer_versions (secret_id, version, key_id, state, created_ms, sealed, mac) FROM stdin;
6	1	2	0	1796230762625	\\x014e7b267e744475fe1e2feca188954709248af8b55039d9ffbbf8ae16607bf59124d464b74d254ac6bcbc476506af	\\x01c6df2c6f8030ecbaec7ea4552dfaf2a60652d538c3c5a6a87e8e29a3eb820328
1	1	2	0	1796230760134	\\x01d674e65ef9f9b75a45803d9a0055412f537640aa9d7503bcb6b8ac8abb2b4b07563276fc9452bebd82da78d404743a	\\x012b8b7a4801801fbee27429be2ac6a7108c498f6d1c3f29bd3bec1ef528fa6703
1	2	1	1	1796230760426	\\x	\\x019e8d889bea31815626827a5cfcb525ae4ef37389eb1145edcf9b4a0ee5f59d3e
1	3	2	0	1796230760696	\\x012174203c09cdaea970755f83d0e6c83390e8fca06ca6defe765c6dd278027e7f70e2a65ac51772599aa367e195da61	\\x01b80cc2789dcc82a7793d5e3e9cdf9f358de190977b7a06a7462738f9e72e0b2a
1	4	2	0	1796230761262	\\x0162cce7a7facb3e650a328efd94d50e3162430a008fa744e26c14d4db97a82bf3da7e3fbfd156be8f1debcbbc6d0ebd	\\x01706d2ab24ee05d77726bce8dd361ee86feb5c0d0230ae9558a0ba3fb6f5df6ff
1	5	2	1	1796230762343	\\x	\\x012d60cf549749b23a19909f3a858a438cd6e5fc195ab8bbf0fd2f85a06b935df4
7	1	2	1	1796230763446	\\x	\\x01a807828c4c75cd02c9387ff3f8ffd387bbe1ac5193919271df2bce19158739ea
\.


--
-- Name: coffer_audit_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.coffer_audit_id_seq', 13, true);


--
-- Name: coffer_secrets_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.coffer_secrets_id_seq', 7, true);


--
-- Name: coffer_audit coffer_audit_chain_seq_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_audit
    ADD CONSTRAINT coffer_audit_chain_seq_key UNIQUE (chain, seq);


--
-- Name: coffer_audit coffer_audit_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_audit
    ADD CONSTRAINT coffer_audit_pkey PRIMARY KEY (id);


--
-- Name: coffer_declarations coffer_declarations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_declarations
    ADD CONSTRAINT coffer_declarations_pkey PRIMARY KEY (service, secret);


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
-- Name: coffer_labels coffer_labels_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_labels
    ADD CONSTRAINT coffer_labels_pkey PRIMARY KEY (secret_id, name);


--
-- Name: coffer_meta coffer_meta_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_meta
    ADD CONSTRAINT coffer_meta_pkey PRIMARY KEY (id);


--
-- Name: coffer_requests coffer_requests_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_requests
    ADD CONSTRAINT coffer_requests_pkey PRIMARY KEY (secret_id, rid);


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
-- Name: coffer_requests_by_age; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX coffer_requests_by_age ON public.coffer_requests USING btree (created_ms);


--
-- Name: coffer_secrets_purge; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX coffer_secrets_purge ON public.coffer_secrets USING btree (purge_ms) WHERE (purge_ms > 0);


--
-- Name: coffer_labels coffer_labels_secret_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_labels
    ADD CONSTRAINT coffer_labels_secret_id_fkey FOREIGN KEY (secret_id) REFERENCES public.coffer_secrets(id);


--
-- Name: coffer_requests coffer_requests_secret_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_requests
    ADD CONSTRAINT coffer_requests_secret_id_fkey FOREIGN KEY (secret_id) REFERENCES public.coffer_secrets(id);


--
-- Name: coffer_versions coffer_versions_secret_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.coffer_versions
    ADD CONSTRAINT coffer_versions_secret_id_fkey FOREIGN KEY (secret_id) REFERENCES public.coffer_secrets(id);


--
-- PostgreSQL database dump complete
--

\unrestrict wBHeIXpUTPtSDec2CFJvGmdiiyi8N0IaiY3ibcWsh5tVzf1oMbqal1a5odiKE60

