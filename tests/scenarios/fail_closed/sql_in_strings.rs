//! Class 4: SQL given as text (functions that run a query string, code blocks, functions
//! created on the fly, PREPARE FROM a string). Functions are an allow list, and statements
//! that define or run code are refused.

use tenancy_tests::{
    arena::{assault, Arena},
    Backend,
};

pub async fn run(arena: &Arena) {
    let attacks: Vec<String> = match arena.backend {
        Backend::Postgres => vec![
            "SELECT query_to_xml('SELECT * FROM customers', true, true, '')",
            "SELECT query_to_xml_and_xmlschema('SELECT * FROM customers', true, true, '')",
            "SELECT table_to_xml('customers', true, true, '')",
            "SELECT database_to_xml(true, true, '')",
            "SELECT cursor_to_xml('c', 10, true, true, '')",
            "SELECT pg_catalog.query_to_xml('SELECT * FROM customers', true, true, '')",
            "SELECT * FROM customers WHERE 1 = 0 OR length(query_to_xml('SELECT 1', true, true, '')::text) > 0",
            "SELECT (xpath('/row/email/text()', query_to_xml('SELECT email FROM customers', true, true, '')))[1]",
            "DO $$ BEGIN PERFORM 1 FROM customers; END $$",
            "CREATE FUNCTION leak() RETURNS SETOF customers LANGUAGE sql AS 'SELECT * FROM customers'",
            "SELECT * FROM dblink('dbname=postgres', 'SELECT email FROM customers') AS t(email text)",
            "SELECT pg_read_file('postgresql.conf')",
            "SELECT current_setting('search_path')",
            "SELECT nextval('x')",
            "SELECT lo_import('/etc/passwd')",
            "COPY customers TO STDOUT",
            "SELECT * FROM customers WHERE email = ANY (SELECT unnest(regexp_split_to_array(query_to_xml('SELECT email FROM customers', true, true, '')::text, ',')))",
        ],
        Backend::MySql => vec![
            "PREPARE s FROM 'SELECT * FROM customers'",
            "SET @q = 'SELECT * FROM customers'",
            "PREPARE s FROM @q",
            "SELECT LOAD_FILE('/etc/passwd')",
            "SELECT SLEEP(1)",
            "SELECT BENCHMARK(1000000, MD5('x'))",
            "SELECT DATABASE()",
            "SELECT USER()",
            "CREATE PROCEDURE p() SELECT * FROM customers",
            "CALL p()",
            "CREATE FUNCTION f() RETURNS INT RETURN (SELECT COUNT(*) FROM customers)",
            "SELECT * FROM customers INTO OUTFILE '/tmp/leak'",
            "HANDLER customers OPEN",
        ],
        Backend::Sqlite => vec![
            "SELECT load_extension('x')",
            "SELECT readfile('/etc/passwd')",
            "SELECT writefile('/tmp/x', 'y')",
            "SELECT eval('SELECT * FROM customers')",
            "SELECT fts3_tokenizer('simple')",
            "CREATE TRIGGER t AFTER INSERT ON customers BEGIN DELETE FROM customers; END",
            "CREATE VIEW v AS SELECT * FROM customers",
            "SELECT * FROM pragma_table_info('customers')",
        ],
    }
    .into_iter()
    .map(String::from)
    .collect();
    let refused = assault(arena, "SQL in strings", &attacks, false).await;
    assert_eq!(refused, attacks.len() * arena.shops.len());
}
