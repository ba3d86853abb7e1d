//! The Rust client (`redis` crate) against a password and ACL users, over RESP2 and RESP3:
//! NOAUTH before authenticating, WRONGPASS, and NOPERM for commands and keys.

use redis::{Client, Value, cmd};
use shardai_tests::Server;

fn code(r: redis::RedisResult<Value>) -> String {
    let e = r.expect_err("expected an error");
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

#[test]
fn passwords_and_users_over_resp2_and_resp3() {
    let s = Server::start_with(&["--requirepass", "pw"]);
    let port = s.port;
    let mut anon = Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(
        code(cmd("GET").arg("k").query(&mut anon)),
        "NOAUTH Authentication required."
    );
    let wrong = Client::open(format!("redis://:nope@127.0.0.1:{port}"))
        .unwrap()
        .get_connection();
    let e = wrong.err().expect("a wrong password is refused");
    assert_eq!(e.kind(), redis::ErrorKind::AuthenticationFailed, "{e}");

    for url in [
        format!("redis://:pw@127.0.0.1:{port}"),
        format!("redis://default:pw@127.0.0.1:{port}?protocol=resp3"),
    ] {
        let mut c = Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let who: String = cmd("ACL").arg("WHOAMI").query(&mut c).unwrap();
        assert_eq!(who, "default", "{url}");
        let ok: String = cmd("ACL")
            .arg(&["SETUSER", "dave", "on", ">dpw", "~d:*", "+@all", "-@admin"])
            .query(&mut c)
            .unwrap();
        assert_eq!(ok, "OK");
    }
    for url in [
        format!("redis://dave:dpw@127.0.0.1:{port}"),
        format!("redis://dave:dpw@127.0.0.1:{port}?protocol=resp3"),
    ] {
        let mut dave = Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let ok: String = cmd("AI.TENSORSET")
            .arg(&["d:t", "FLOAT", "1", "VALUES", "3"])
            .query(&mut dave)
            .unwrap();
        assert_eq!(ok, "OK");
        assert_eq!(
            code(
                cmd("AI.TENSORGET")
                    .arg(&["other", "VALUES"])
                    .query(&mut dave)
            ),
            "NOPERM No permissions to access a key"
        );
        assert_eq!(
            code(
                cmd("CONFIG")
                    .arg(&["SET", "maxclients", "5"])
                    .query(&mut dave)
            ),
            "NOPERM User dave has no permissions to run the 'config|set' command"
        );
    }
}
