//! `DATABASE_URL` takes libpq's `sslmode` and `sslrootcert` (SPEC §1),
//! checked against the local PostgreSQL, which runs with `ssl = on` and
//! Debian's self-signed "snakeoil" certificate.

use diesel::prelude::*;
use etl_store::test_support::TestDatabase;

const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    ssl: bool,
}

fn session_is_encrypted(conn: &mut PgConnection) -> bool {
    diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Ssl>(conn)
        .expect("reading pg_stat_ssl")
        .ssl
}

fn with_ssl(db: &TestDatabase, parameters: &str) -> String {
    db.url().replace("sslmode=disable", parameters)
}

#[test]
fn sslmode_require_encrypts_pooled_sessions() {
    let db = TestDatabase::migrated();
    let pool = etl_store::build_pool(&etl_store::PoolConfig::new(with_ssl(
        &db,
        "sslmode=require",
    )));
    let mut conn = pool.get().expect("a TLS session");
    assert!(session_is_encrypted(&mut conn));
    // And `sslmode=disable` really is plain, so the check above can fail.
    let mut plain = etl_store::connect(db.url()).expect("a plain session");
    assert!(!session_is_encrypted(&mut plain));
}

#[test]
fn sslrootcert_verifies_the_servers_certificate() {
    let db = TestDatabase::migrated();
    // The snakeoil certificate is its own CA: verify-ca passes with it.
    let trusted = with_ssl(&db, &format!("sslmode=verify-ca&sslrootcert={SNAKEOIL}"));
    let mut conn = etl_store::connect(&trusted).expect("verified against the snakeoil root");
    assert!(session_is_encrypted(&mut conn));
    // The certificate names `localhost`: verify-full passes for that name
    // and fails for 127.0.0.1, the same server.
    let full = with_ssl(&db, &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"));
    let by_name = full.replacen("@127.0.0.1:", "@localhost:", 1);
    assert_ne!(by_name, full);
    let mut conn = etl_store::connect(&by_name).expect("verify-full by its name");
    assert!(session_is_encrypted(&mut conn));
    assert!(
        etl_store::connect(&full).is_err(),
        "verify-full passed although the host name does not match"
    );
    // Another root does not verify it at all.
    let other = std::fs::read_dir("/etc/ssl/certs")
        .expect("system certificates")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "pem") && !p.ends_with("ssl-cert-snakeoil.pem")
        })
        .expect("some other root certificate");
    let wrong = with_ssl(
        &db,
        &format!("sslmode=verify-ca&sslrootcert={}", other.display()),
    );
    assert!(
        etl_store::connect(&wrong).is_err(),
        "an unrelated root is refused"
    );
}
