//! `cargo xtask tenant add` and `cargo xtask token` against a real
//! database of the test's own (SPEC §10).

use std::process::{Command, Output};

use etl_store::test_support::TestDatabase;

const SECRET: &str = "a-test-secret-of-at-least-32-bytes-long";

fn xtask(db: &TestDatabase, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("ETL_JWT_SECRET", SECRET)
        .output()
        .expect("running xtask")
}

#[test]
fn tenant_add_prints_the_new_id_and_token_refuses_a_missing_tenant() {
    let db = TestDatabase::migrated();
    let added = xtask(&db, &["tenant", "add", "globex"]);
    assert!(added.status.success(), "{added:?}");
    let id: i32 = String::from_utf8_lossy(&added.stdout)
        .trim()
        .parse()
        .expect("the id alone on stdout");
    let mut conn = db.connect();
    let tenant = etl_store::tenants::find(&mut conn, id)
        .expect("query")
        .expect("created");
    assert_eq!(tenant.name, "globex");
    let integrations =
        etl_store::integrations::list_for_tenant(&mut conn, etl_domain::TenantId::new(id))
            .expect("query");
    assert_eq!(integrations.len(), 2, "a jira and a github integration");

    let again = xtask(&db, &["tenant", "add", "globex"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    let token = xtask(&db, &["token", "--tenant", &id.to_string()]);
    assert!(token.status.success(), "{token:?}");
    assert_eq!(
        String::from_utf8_lossy(&token.stdout).matches('.').count(),
        2
    );

    let missing = xtask(&db, &["token", "--tenant", &(id + 1000).to_string()]);
    assert!(!missing.status.success());
    assert!(missing.stdout.is_empty(), "no token printed");
    let why = String::from_utf8_lossy(&missing.stderr);
    assert!(why.contains("does not exist"), "{why}");
}
