//! Memberships: adding by email, roles, leaving, and the last-owner rule.
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn members_are_added_by_email_changed_and_removed() {
    let app = spawn_app().await;
    let owner = app.login(OWNER).await;
    let vault = owner.create_vault("Team").await;
    let path = format!("/api/vaults/{vault}/members");
    let resp = owner
        .post(
            &path,
            json!({ "email": "Viewer@Demo.com", "role": "viewer" }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let member = resp.json::<Value>().await.unwrap()["member"].clone();
    assert_eq!(
        (member["email"].as_str(), member["role"].as_str()),
        (Some(VIEWER), Some("viewer"))
    );
    for key in ["userId", "email", "name", "role", "joinedAt"] {
        assert!(member.get(key).is_some(), "{key}");
    }
    let dup = owner
        .post(&path, json!({ "email": VIEWER, "role": "owner" }))
        .await;
    assert_eq!(
        error_of(dup, StatusCode::CONFLICT).await["code"],
        "CONFLICT"
    );
    let nobody = owner
        .post(
            &path,
            json!({ "email": "nobody@demo.com", "role": "viewer" }),
        )
        .await;
    assert_eq!(
        error_of(nobody, StatusCode::NOT_FOUND).await["code"],
        "NOT_FOUND"
    );
    let bad = owner
        .post(&path, json!({ "email": VIEWER, "role": "admin" }))
        .await;
    assert_eq!(
        error_of(bad, StatusCode::BAD_REQUEST).await["details"][0]["field"],
        "role"
    );

    let uid = member["userId"].as_str().unwrap();
    let changed: Value = owner
        .patch(&format!("{path}/{uid}"), json!({ "role": "contributor" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(changed["member"]["role"], "contributor");
    let viewer = app.login(VIEWER).await;
    assert_eq!(
        viewer.create_source(&vault, "now allowed").await.status(),
        StatusCode::CREATED
    );

    let list: Value = owner.get(&path).await.json().await.unwrap();
    assert_eq!(list["members"].as_array().unwrap().len(), 2);
    assert_eq!(
        owner.delete(&format!("{path}/{uid}")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        viewer.get(&format!("/api/vaults/{vault}")).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn any_member_may_leave_but_the_last_owner_cannot_leave_or_be_demoted() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let (owner, viewer) = (app.login(OWNER).await, app.login(VIEWER).await);
    let (owner_id, viewer_id) = (user_id(&owner).await, user_id(&viewer).await);
    let members = format!("/api/vaults/{vault}/members");

    let demote = owner
        .patch(
            &format!("{members}/{owner_id}"),
            json!({ "role": "viewer" }),
        )
        .await;
    assert_eq!(
        error_of(demote, StatusCode::CONFLICT).await["code"],
        "CONFLICT"
    );
    let leave = owner.delete(&format!("{members}/{owner_id}")).await;
    assert_eq!(
        error_of(leave, StatusCode::CONFLICT).await["code"],
        "CONFLICT"
    );
    let role: Value = owner
        .get(&format!("/api/vaults/{vault}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(role["role"], "owner", "nothing changed");

    // The viewer cannot remove others, but may leave.
    assert_eq!(
        viewer
            .delete(&format!("{members}/{owner_id}"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        viewer
            .delete(&format!("{members}/{viewer_id}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    // With a second owner, the first may step down.
    let contributor = app.login(CONTRIBUTOR).await;
    let cid = user_id(&contributor).await;
    assert_eq!(
        owner
            .patch(&format!("{members}/{cid}"), json!({ "role": "owner" }))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        owner
            .patch(
                &format!("{members}/{owner_id}"),
                json!({ "role": "viewer" })
            )
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn removing_a_users_last_membership_leaves_everything_else_untouched() {
    let app = spawn_app().await;
    let vault = app.demo_vault().await;
    let owner = app.login(OWNER).await;
    let viewer = app.login(VIEWER).await;
    let vid = user_id(&viewer).await;
    let before: Value = owner
        .get(&format!("/api/vaults/{vault}/sources"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        owner
            .delete(&format!("/api/vaults/{vault}/members/{vid}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let vaults: Value = viewer.get("/api/vaults").await.json().await.unwrap();
    assert_eq!(vaults["vaults"].as_array().unwrap().len(), 0);
    assert_eq!(
        viewer.get("/api/auth/session").await.status(),
        StatusCode::OK,
        "the account itself remains"
    );
    let after: Value = owner
        .get(&format!("/api/vaults/{vault}/sources"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["sources"], after["sources"]);
    let members: Value = owner
        .get(&format!("/api/vaults/{vault}/members"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["members"].as_array().unwrap().len(), 2);
}
