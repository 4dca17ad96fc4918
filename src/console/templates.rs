//! The console's templates, compiled into the binary and loaded once.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use minijinja::Environment;

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/console/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates!(
    "layout.html",
    "login.html",
    "overview.html",
    "cases.html",
    "case.html",
    "error.html",
    "rejections.html",
    "audit.html",
    "tokens.html",
    "import.html",
    "filing.html",
    "disposal.html",
    "disposal_list.html",
    "transfers.html",
    "transfer.html",
    "transfer_progress.html",
    "retention.html",
    "disposal_print.html",
);

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            // A template that does not parse is a build defect: the page tests render them all.
            if let Err(e) = env.add_template(name, src) {
                tracing::error!(template = name, error = %e, "console template");
            }
        }
        // HTML-escaped as minijinja does, except `/`, which needs no escaping in text or in a
        // quoted attribute (file paths read as paths).
        env.set_formatter(|out, state, value| {
            if value.is_safe() || state.auto_escape() == minijinja::AutoEscape::None {
                return minijinja::escape_formatter(out, state, value);
            }
            if value.is_undefined() || value.is_none() {
                return Ok(());
            }
            let text = value.to_string();
            for ch in text.chars() {
                match ch {
                    '&' => out.write_str("&amp;")?,
                    '<' => out.write_str("&lt;")?,
                    '>' => out.write_str("&gt;")?,
                    '"' => out.write_str("&quot;")?,
                    '\'' => out.write_str("&#x27;")?,
                    c => out.write_str(c.encode_utf8(&mut [0u8; 4]))?,
                }
            }
            Ok(())
        });
        env.add_filter("path_url", path_url);
        env.add_filter("zh_status", zh_status);
        env.add_filter("zh_result", zh_result);
        env.add_filter("zh_property", zh_property);
        env.add_filter("zh_term", zh_term);
        env.add_filter("zh_gd", zh_gd);
        env
    })
}

/// A file path for a URL: each segment percent-encoded, the slashes kept.
fn path_url(s: String) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Chinese for a case's status.
fn zh_status(s: String) -> String {
    match s.as_str() {
        "archived" => "已归档",
        "filed" => "已归档（年度归档完成）",
        "disposed" => "已销毁",
        "transferred" => "已移交",
        "pending" => "待归档",
        "proposed" => "待审批",
        "approved" => "已批准",
        "rejected" => "已驳回",
        "executing" => "执行中",
        "executed" => "已执行",
        "destroyed" => "已销毁",
        "draft" => "草稿",
        "building" => "生成载体中",
        "built" => "载体已生成",
        "sending" => "发送中",
        "failed" => "失败",
        "running" => "进行中",
        "complete" => "已完成",
        _ => return s,
    }
    .into()
}

/// Chinese for the vocabularies of schemas/case.xsd a page shows (result, classification,
/// retention, channel); other values as they are.
fn zh_term(s: String) -> String {
    match s.as_str() {
        "approved" => "准予",
        "rejected" => "不予",
        "not_accepted" => "不予受理",
        "withdrawn" => "撤回",
        "other" => "其他",
        "none" => "无（非涉密）",
        "internal" => "内部",
        "secret" => "秘密",
        "confidential" => "机密",
        "Y" => "永久",
        "D30" => "定期 30 年",
        "D10" => "定期 10 年",
        "online" => "在线",
        "offline" => "离线导入",
        _ => return s,
    }
    .into()
}

/// The GD check items in Chinese, by code (the report's own text is kept beside in English).
fn zh_gd(code: String) -> String {
    match code.as_str() {
        "GD-1-1" => "固化信息有效性（摘要值与签名）",
        "GD-1-2" => "电子文件内容真实性（摘要值比对）",
        "GD-1-3" => "元数据项准确性（长度、类型、值域、格式）",
        "GD-1-4" => "文件属性与元数据一致",
        "GD-1-5" => "档案包结构符合规范",
        "GD-1-6" => "电子签名与印章有效性",
        "GD-1-7" => "元数据不含非法字符",
        "GD-2-1" => "文件数量相符",
        "GD-2-2" => "必填元数据项齐全",
        "GD-2-3" => "办理过程记录齐全",
        "GD-2-4" => "电子证照及其元数据已归档",
        "GD-2-5" => "无重复归档",
        "GD-2-6" => "归档环境信息已记录",
        "GD-3-1" => "元数据可读",
        "GD-3-2" => "内容格式允许且可读",
        "GD-3-3" => "未加密、无非标准压缩",
        "GD-4-1" => "病毒检测",
        "GD-4-2" => "载体检测",
        "GD-4-3" => "归档过程安全",
        _ => return String::new(),
    }
    .into()
}

/// Chinese for the four properties of DA/T 70 (四性).
fn zh_property(s: String) -> String {
    match s.as_str() {
        "authenticity" => "真实性",
        "integrity" => "完整性",
        "usability" => "可用性",
        "security" => "安全性",
        _ => return s,
    }
    .into()
}

/// Chinese for a check item's result.
fn zh_result(s: String) -> String {
    match s.as_str() {
        "pass" => "通过",
        "fail" => "不通过",
        "warn" => "警告",
        "manual" => "人工检查",
        "not_checked" => "未检查",
        "not_configured" => "未配置",
        "not_present" => "不在此处",
        "not_applicable" => "不适用",
        _ => return s,
    }
    .into()
}

/// Security headers every console page carries: no inline script, no framing, no sniffing, no
/// referrer, no caching of pages that may show personal data.
fn secured(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header((
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ))
    .insert_header(("X-Content-Type-Options", "nosniff"))
    .insert_header(("X-Frame-Options", "DENY"))
    .insert_header(("Referrer-Policy", "no-referrer"))
    .insert_header(("Cache-Control", "no-store"));
    b
}

/// Renders `name` with `ctx` (and the signed-in user's name, role and CSRF token) as a page.
pub fn page(
    status: StatusCode,
    name: &str,
    ctx: minijinja::Value,
    session: Option<&super::session::Session>,
) -> HttpResponse {
    let user = session.map(|s| {
        minijinja::context! {
            name => s.who.name.clone(),
            role => s.who.role.as_str(),
            role_zh => role_zh(s.who.role),
            csrf => s.csrf.clone(),
        }
    });
    let ctx = minijinja::context! { user => user, ..ctx };
    let html = env().get_template(name).and_then(|t| t.render(ctx));
    match html {
        Ok(html) => secured(HttpResponse::build(status))
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(e) => {
            tracing::error!(template = name, error = %e, "console page");
            secured(HttpResponse::InternalServerError())
                .content_type("text/plain; charset=utf-8")
                .body("页面生成失败，请查看服务器日志")
        }
    }
}

/// A part of a page (what htmx swaps in): the same headers, no layout.
pub fn fragment(name: &str, ctx: minijinja::Value) -> HttpResponse {
    page(StatusCode::OK, name, ctx, None)
}

/// The templates' size in bytes (the console's embedded assets are reported together).
pub fn bytes() -> usize {
    TEMPLATES.iter().map(|(_, src)| src.len()).sum()
}

pub fn render(
    name: &str,
    ctx: minijinja::Value,
    session: Option<&super::session::Session>,
) -> HttpResponse {
    page(StatusCode::OK, name, ctx, session)
}

pub fn role_zh(r: crate::auth::Role) -> &'static str {
    use crate::auth::Role::*;
    match r {
        Submitter => "报送系统",
        Archivist => "档案员",
        Auditor => "审计员",
        Admin => "管理员",
        Transferor => "移交单位",
        System => "系统",
    }
}

/// Every template parses (a page test renders each too).
#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let mut env = minijinja::Environment::new();
        for (name, src) in super::TEMPLATES {
            env.add_template(name, src)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
