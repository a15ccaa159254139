//! `GET /`: what someone who opens the service's address in a browser sees. In sandbox mode that
//! is the sandbox console (a redirect to `/sandbox`); otherwise a short page saying what the
//! service is and where people use it (DingTalk, the dashboard), instead of an empty 404. The
//! page is static: it names no person, case or setting.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::AppState;

const PAGE: &str = r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>联合调处助手</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.6;color:#1f2328}h1{font-size:1.4rem}a{color:#0b63ce}</style>
</head><body>
<h1>甘州区 12345 热线疑难工单联合调处</h1>
<p>这是“联合调处助手”钉钉机器人的服务地址。提交申请、审核、协办和查询都在钉钉里进行：在钉钉中找到机器人，发送“帮助”查看可用的命令，发送“模板”获取申请格式。</p>
<p>热线与工作小组人员：在钉钉中向机器人发送“看板”，获取<a href="/dashboard">数据看板</a>的登录链接。</p>
</body></html>"#;

pub(super) async fn home(State(state): State<Arc<AppState>>) -> Response {
    if state.sandbox.is_some() {
        return Redirect::to("/sandbox").into_response();
    }
    let mut response = Html(PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
