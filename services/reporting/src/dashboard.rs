//! The board dashboard, served over HTTP (`ICS_HTTP_LISTEN`) by the process that runs the
//! reporting service: read-only pages computed from the same views as the gRPC API, kept live
//! by server-sent events from the same change notifications as its watches.
//!
//! - `GET /sign-in` and `POST /sign-in`: a board pastes its token (or follows a sign-in link,
//!   whose token travels in the URL fragment, never to the server's logs); the token becomes
//!   an HttpOnly, SameSite=Strict session cookie (Secure under TLS) that expires with it.
//!   Scripts send `Authorization: Bearer <token>` instead.
//! - `GET /ics/{ODS}`: the ICS overview; `GET /ics/{ODS}/live`: its updates as HTML fragments.
//!
//! Tenancy is the gRPC API's: the principal comes from the token, and a board of one ICS is
//! refused another's pages. Without a valid token a page answers 401 with the sign-in form and
//! no data.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::NaiveDate;
use ics_charts::escape;
use ics_proto::reporting::v1::{Overview, Scope, TrustSummary, scope};
use ics_service_kit::auth::{Authenticator, Principal, token_expired};
use sqlx::PgPool;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::outcome_records::OutcomeRecords;
use crate::watch::ChangeHub;
use crate::{OVERVIEW, views};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ics_session";

/// What every page handler needs.
#[derive(Clone)]
pub struct Dashboard {
    pool: PgPool,
    changes: ChangeHub,
    authenticator: Authenticator,
    /// Whether the pages are served over TLS (the cookie is then `Secure`).
    secure: bool,
    /// Shown on every page when the deployment holds demonstration data (`ICS_DATA_LABEL`).
    data_label: Option<String>,
    /// The root of the FHIR resources' canonical URLs (`ICS_FHIR_BASE_URL`).
    fhir_base: String,
    /// The counted workshops the programme pages' outcomes read (see [`OutcomeRecords`]).
    outcome_records: Arc<OutcomeRecords>,
    shutdown: CancellationToken,
}

impl Dashboard {
    pub fn new(
        pool: PgPool,
        changes: ChangeHub,
        authenticator: Authenticator,
        secure: bool,
        data_label: Option<String>,
        shutdown: CancellationToken,
    ) -> Self {
        Dashboard {
            changes,
            authenticator,
            secure,
            data_label: data_label.filter(|label| !label.trim().is_empty()),
            fhir_base: ics_fhir::EXAMPLE_BASE.to_owned(),
            outcome_records: Arc::new(OutcomeRecords::new(pool.clone())),
            pool,
            shutdown,
        }
    }

    /// The root of the FHIR resources' canonical URLs.
    pub fn with_fhir_base(mut self, fhir_base: &str) -> Self {
        self.fhir_base = fhir_base.to_owned();
        self
    }

    /// Counted workshops shared with the process's other outcomes views (the gRPC API's),
    /// rather than a set of its own.
    pub fn with_outcome_records(mut self, outcome_records: Arc<OutcomeRecords>) -> Self {
        self.outcome_records = outcome_records;
        self
    }

    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn fhir_base(&self) -> &str {
        &self.fhir_base
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(home))
            .route("/sign-in", get(sign_in_page).post(sign_in))
            .route("/sign-out", axum::routing::post(sign_out))
            .route("/ics/{ods}", get(ics_page))
            .route("/ics/{ods}/live", get(ics_live))
            .route("/ics/{ods}/measures", get(measures_page))
            .route("/ics/{ods}/measures/live", get(measures_live))
            .route("/ics/{ods}/trusts/{trust}", get(trust_page))
            .route("/ics/{ods}/trusts/{trust}/live", get(trust_live))
            .route("/ics/{ods}/board-pack/{file}", get(ics_board_pack))
            .route("/programmes/{id}", get(programme_page))
            .route("/programmes/{id}/live", get(programme_live))
            .route(
                "/programmes/{id}/board-pack/{file}",
                get(programme_board_pack),
            )
            .route("/ics/{ods}/measures/{measure}/{trust}", get(series_page))
            .route(
                "/ics/{ods}/measures/{measure}/{trust}/live",
                get(series_live),
            )
            // HL7 FHIR R4 for integration teams (see crate::fhir).
            .route("/fhir/Measure", get(crate::fhir::measure_search))
            .route(
                "/fhir/MeasureReport",
                get(crate::fhir::measure_report_search),
            )
            .route("/static/dashboard.js", get(script))
            .route("/static/dashboard.css", get(stylesheet))
            .with_state(self)
    }

    /// The caller's principal and token expiry, from the bearer header or the session cookie.
    fn caller(&self, headers: &HeaderMap) -> Option<(Principal, Option<SystemTime>)> {
        let token = bearer(headers).or_else(|| session_cookie(headers))?;
        self.authenticator.authenticate_token(&token).ok()
    }

    /// The caller, admitted within its tenant's call rate, which covers the HTTP surface as it
    /// covers gRPC calls; each surface words the refusal its own way.
    pub(crate) fn admitted_caller(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Principal, Option<SystemTime>), Refused> {
        let (principal, expires_at) = self.caller(headers).ok_or(Refused::NoToken)?;
        self.authenticator
            .admit(&principal)
            .map_err(Refused::TooFast)?;
        Ok((principal, expires_at))
    }
}

/// Why an HTTP caller was not admitted.
pub(crate) enum Refused {
    /// No valid bearer token or session.
    NoToken,
    /// Past the tenant's call rate: retry after this long.
    TooFast(Duration),
}

/// `response` with the `Retry-After` a refusal for rate asks for (whole seconds, at least one).
pub(crate) fn with_retry_after(mut response: Response, wait: Duration) -> Response {
    if let Ok(retry_after) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after);
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Where a principal's dashboard starts.
fn home_of(principal: &Principal) -> Option<String> {
    match principal {
        Principal::BoardReader {
            ics_ods_code: Some(ics),
            ..
        } => Some(format!("/ics/{ics}")),
        Principal::BoardReader {
            programme_id: Some(programme),
            ..
        } => Some(format!("/programmes/{programme}")),
        _ => None,
    }
}

async fn home(State(dashboard): State<Dashboard>, headers: HeaderMap) -> Response {
    match dashboard
        .caller(&headers)
        .and_then(|(principal, _)| home_of(&principal))
    {
        Some(home) => Redirect::to(&home).into_response(),
        None => Redirect::to("/sign-in").into_response(),
    }
}

async fn sign_in_page() -> Response {
    page_response(StatusCode::OK, "Sign in", &sign_in_form(None))
}

fn sign_in_form(problem: Option<&str>) -> String {
    let problem = problem
        .map(|problem| format!(r#"<p class="problem" role="alert">{}</p>"#, escape(problem)))
        .unwrap_or_default();
    format!(
        r#"<h1>Sign in</h1>
{problem}<p>Paste the access token your organisation issued to your board.</p>
<form method="post" action="/sign-in" id="sign-in">
  <label for="token">Access token</label>
  <textarea id="token" name="token" rows="4" cols="60" required autocomplete="off" spellcheck="false"></textarea>
  <button type="submit">Sign in</button>
</form>"#
    )
}

#[derive(serde::Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(State(dashboard): State<Dashboard>, Form(form): Form<SignIn>) -> Response {
    let token = form.token.trim().to_owned();
    let Ok((principal, expires_at)) = dashboard.authenticator.authenticate_token(&token) else {
        tracing::info!(
            target: ics_service_kit::audit::TARGET,
            kind = "unauthenticated",
            rpc = "POST /sign-in",
            "dashboard sign-in refused"
        );
        return page_response(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            &sign_in_form(Some("That token was not accepted: it may have expired.")),
        );
    };
    let Some(home) = home_of(&principal) else {
        return page_response(
            StatusCode::FORBIDDEN,
            "Not a board",
            "<h1>Not a board</h1><p>The dashboard is for ICS boards; this token is not one.</p>",
        );
    };
    let max_age = expires_at
        .and_then(|expires_at| expires_at.duration_since(SystemTime::now()).ok())
        .map(|left| left.as_secs())
        .unwrap_or(0);
    let cookie = session_cookie_value(&token, max_age, dashboard.secure);
    let mut response = Redirect::to(&home).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The session cookie a sign-in sets: HttpOnly (no script reads it), SameSite=Strict (no other
/// site sends it), Secure under TLS, and gone when the token expires.
fn session_cookie_value(token: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    )
}

async fn sign_out() -> Response {
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ics_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

/// The caller of a page, or the response that refuses it: the sign-in form without a valid
/// token, 403 (audited) when `may_read` denies the principal the page's scope (`what`).
fn page_caller(
    dashboard: &Dashboard,
    headers: &HeaderMap,
    may_read: impl FnOnce(&Principal) -> Result<(), ics_service_kit::auth::Denied>,
    what: &str,
) -> Result<(Principal, Option<SystemTime>), Response> {
    let (principal, expires_at) = match dashboard.admitted_caller(headers) {
        Ok(caller) => caller,
        Err(Refused::NoToken) => {
            return Err(page_response(
                StatusCode::UNAUTHORIZED,
                "Sign in",
                &sign_in_form(None),
            ));
        }
        Err(Refused::TooFast(wait)) => {
            return Err(with_retry_after(
                page_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests",
                    "<h1>Too many requests</h1><p>Your board is reading faster than its share; wait a moment and reload.</p>",
                ),
                wait,
            ));
        }
    };
    if let Err(denied) = may_read(&principal) {
        denied.audit();
        return Err(page_response(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!("<h1>Not allowed</h1><p>Your board may not read {what}.</p>"),
        ));
    }
    Ok((principal, expires_at))
}

/// The caller of an ICS page.
fn ics_caller(
    dashboard: &Dashboard,
    headers: &HeaderMap,
    ods: &str,
) -> Result<(Principal, Option<SystemTime>), Response> {
    page_caller(
        dashboard,
        headers,
        |principal| principal.authorize_ics_read(ods),
        "this ICS",
    )
}

fn ics_scope(ods: &str) -> Scope {
    Scope {
        scope: Some(scope::Scope::IcsOdsCode(ods.to_owned())),
    }
}

async fn ics_page(
    State(dashboard): State<Dashboard>,
    Path(ods): Path<String>,
    headers: HeaderMap,
) -> Response {
    let principal = match ics_caller(&dashboard, &headers, &ods) {
        Ok((principal, _)) => principal,
        Err(refused) => return refused,
    };
    let today = chrono::Utc::now().date_naive();
    match views::overview(&dashboard.pool, &ics_scope(&ods), today).await {
        Ok(overview) => {
            let title = format!("{} — ICS overview", overview.name);
            let freshness = freshness_note(&dashboard.pool, OVERVIEW).await;
            let label = data_label(&dashboard);
            let body = format!(
                r#"<div class="signed-in">Signed in as {who} <form method="post" action="/sign-out"><button type="submit">Sign out</button></form></div>
{label}<h1>{name}</h1>
<nav aria-label="Views of the ICS"><a href="/ics/{ods}/measures">Measures</a> <a href="/ics/{ods}/board-pack/board-pack.html" download>Board pack (HTML)</a> <a href="/ics/{ods}/board-pack/measures.csv" download>Measures (CSV)</a> <a href="/ics/{ods}/board-pack/outcomes.csv" download>Outcomes (CSV)</a></nav>
{freshness}<p class="live-status" id="live-status" role="status">Updates appear here as they happen.</p>
<section id="overview" data-live="/ics/{ods}/live" aria-live="polite">{section}</section>"#,
                who = escape(&principal.label()),
                name = escape(&overview.name),
                ods = escape(&ods),
                section = overview_section(&overview),
            );
            page_response(StatusCode::OK, &title, &body)
        }
        Err(error) => error_page(&error),
    }
}

use ics_board_pack::STALE_AFTER_DAYS;

/// When the view's projection last applied a change, with a warning when that is long ago.
async fn freshness_note(pool: &PgPool, projection: &str) -> String {
    let updated: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT max(updated_at) FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(projection)
    .fetch_one(pool)
    .await
    .ok()
    .flatten();
    let Some(updated) = updated else {
        return r#"<p class="stale" role="note">No data has been recorded for this view yet.</p>"#
            .to_owned();
    };
    let age = chrono::Utc::now() - updated;
    let when = updated.format("%-d %B %Y %H:%M UTC");
    if age.num_days() >= STALE_AFTER_DAYS {
        format!(
            r#"<p class="stale" role="note">The data runs to {when}: nothing has changed for {} days. Check that the trusts' systems are still sending it.</p>"#,
            age.num_days()
        )
    } else {
        format!(r#"<p class="freshness">The data runs to {when}.</p>"#)
    }
}

/// The page of the ICS's measures: each trust × measure with its latest value and the Making
/// Data Count icons, linking to its XmR chart.
async fn measures_page(
    State(dashboard): State<Dashboard>,
    Path(ods): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = ics_caller(&dashboard, &headers, &ods) {
        return refused;
    }
    let today = chrono::Utc::now().date_naive();
    let view = match crate::measures::measure_view(&dashboard.pool, &ods, "", today).await {
        Ok(view) => view,
        Err(error) => return error_page(&error),
    };
    // Funnel plots of the proportion measures, as the board pack draws them; a measure with too
    // few trusts with data for one period, or not a proportion, has none.
    let codes: std::collections::BTreeSet<&str> = view
        .rows
        .iter()
        .map(|row| row.measure_code.as_str())
        .collect();
    let mut funnels = String::new();
    for code in codes {
        if let Ok((comparison, funnel)) =
            crate::measures::peer_funnel(&dashboard.pool, &ods, code, "", None, today).await
        {
            funnels.push_str(&format!(
                r#"<figure class="chart">{}</figure>"#,
                ics_board_pack::funnel_html(
                    &view,
                    &ics_board_pack::PeerFunnel { comparison, funnel }
                )
            ));
        }
    }
    if !funnels.is_empty() {
        funnels = format!(
            "<section id=\"peers\"><h2>The ICS's trusts against each other</h2>{funnels}</section>"
        );
    }
    let label = data_label(&dashboard);
    let freshness = periods_note(&view.rows.iter().collect::<Vec<_>>());
    let body = format!(
        r#"{label}<h1>{name}: measures</h1>
<nav aria-label="Views of the ICS"><a href="/ics/{ods}">Overview</a></nav>
{freshness}<p class="live-status" id="live-status" role="status">Updates appear here as they happen.</p>
<section id="measures" data-live="/ics/{ods}/measures/live" aria-live="polite">{section}</section>
{funnels}"#,
        name = escape(&view.name),
        ods = escape(&ods),
        section = measures_section(&ods, &view),
    );
    page_response(StatusCode::OK, &format!("{} — measures", view.name), &body)
}

/// The caller of a programme page.
fn programme_caller(
    dashboard: &Dashboard,
    headers: &HeaderMap,
    programme: &str,
) -> Result<(Principal, Option<SystemTime>), Response> {
    page_caller(
        dashboard,
        headers,
        |principal| principal.authorize_programme_read(programme),
        "this programme",
    )
}

fn programme_scope(programme: &str) -> Scope {
    Scope {
        scope: Some(scope::Scope::ProgrammeId(programme.to_owned())),
    }
}

/// A programme's workshop outcomes: the headline table and each trust's contribution.
async fn programme_page(
    State(dashboard): State<Dashboard>,
    Path(programme): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = programme_caller(&dashboard, &headers, &programme) {
        return refused;
    }
    let today = chrono::Utc::now().date_naive();
    let outcomes = match views::outcomes(
        &dashboard.pool,
        &dashboard.outcome_records,
        &programme_scope(&programme),
        today,
    )
    .await
    {
        Ok(outcomes) => outcomes,
        Err(error) => return error_page(&error),
    };
    let freshness = freshness_note(&dashboard.pool, crate::OUTCOMES).await;
    let body = format!(
        r#"{label}<h1>{name}</h1>
<nav aria-label="Downloads"><a href="/programmes/{id}/board-pack/board-pack.html" download>Board pack (HTML)</a> <a href="/programmes/{id}/board-pack/outcomes.csv" download>Outcomes (CSV)</a></nav>
{freshness}<p class="live-status" id="live-status" role="status">Updates appear here as they happen.</p>
<section id="outcomes" data-live="/programmes/{id}/live" aria-live="polite">{section}</section>"#,
        label = data_label(&dashboard),
        name = escape(&outcomes.name),
        id = escape(&programme),
        section = outcomes_section(&outcomes),
    );
    page_response(StatusCode::OK, &outcomes.name, &body)
}

/// The outcomes tables: what the programme page shows and what each live update replaces.
fn outcomes_section(outcomes: &ics_proto::reporting::v1::Outcomes) -> String {
    use ics_board_pack::outcomes::{
        headline_table, kind_label, kinds_with_workshops, reduction_text,
    };
    use ics_board_pack::text::{Align, Table};
    let headline = html_table(
        "Headline: workshops with a report-out, and the reduction they achieved, by kind of improvement",
        &headline_table(&outcomes.headline),
    );
    let mut by_trust = Table::new(&[
        ("trust", Align::Left),
        ("improvement kind", Align::Left),
        ("workshops", Align::Right),
        ("reduction", Align::Left),
    ]);
    for group in &outcomes.by_trust {
        for outcome in kinds_with_workshops(&group.kinds) {
            by_trust.row(vec![
                group.name.clone(),
                kind_label(outcome.kind),
                outcome.workshops.to_string(),
                reduction_text(Some(outcome)),
            ]);
        }
    }
    if by_trust.rows().is_empty() {
        by_trust.row(vec![
            "No trust has a workshop with a report-out yet.".to_owned(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    format!(
        "<p>Workshops counted as of <strong>{}</strong>.</p>\n{headline}{}",
        date_text(outcomes.as_of.as_ref()),
        html_table("Each trust's contribution", &by_trust)
    )
}

/// A board-pack table as an accessible HTML table: a caption, column headers, and the first
/// cell of each row as its row header.
fn html_table(caption: &str, table: &ics_board_pack::text::Table) -> String {
    let headings: String = table
        .headings()
        .map(|heading| format!(r#"<th scope="col">{}</th>"#, escape(heading)))
        .collect();
    let rows: String = table
        .rows()
        .iter()
        .map(|row| {
            let cells: String = row
                .iter()
                .enumerate()
                .map(|(index, cell)| {
                    if index == 0 {
                        format!(r#"<th scope="row">{}</th>"#, escape(cell))
                    } else {
                        format!("<td>{}</td>", escape(cell))
                    }
                })
                .collect();
            format!("<tr>{cells}</tr>\n")
        })
        .collect();
    format!(
        "<table>\n<caption>{}</caption>\n<thead><tr>{headings}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n",
        escape(caption)
    )
}

async fn ics_board_pack(
    State(dashboard): State<Dashboard>,
    Path((ods, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = ics_caller(&dashboard, &headers, &ods) {
        return refused;
    }
    board_pack_download(&dashboard, &ics_scope(&ods), &file).await
}

async fn programme_board_pack(
    State(dashboard): State<Dashboard>,
    Path((programme, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = programme_caller(&dashboard, &headers, &programme) {
        return refused;
    }
    board_pack_download(&dashboard, &programme_scope(&programme), &file).await
}

/// The scope's board pack as the service computes it for `GetBoardPack`: `board-pack.html`, or
/// one CSV table (`outcomes.csv`, `measures.csv`).
async fn board_pack_download(dashboard: &Dashboard, scope: &Scope, file: &str) -> Response {
    let wanted = match file.strip_suffix(".csv") {
        _ if file == "board-pack.html" => crate::board_pack::Wanted::Html,
        Some(table) => match crate::board_pack::Wanted::of(
            ics_proto::reporting::v1::BoardPackFormat::Csv as i32,
            table,
            scope,
        ) {
            Ok(wanted) => wanted,
            Err(error) => return error_page(&error),
        },
        None => {
            return error_page(&ics_service_kit::ServiceError::not_found(format!(
                "board pack file {file}"
            )));
        }
    };
    let today = chrono::Utc::now().date_naive();
    let generated_at = chrono::Utc::now().format("%-d %B %Y %H:%M UTC").to_string();
    let pack = match crate::board_pack::board_pack(
        &dashboard.pool,
        &dashboard.outcome_records,
        scope,
        today,
        &wanted,
        &generated_at,
        dashboard.data_label.as_deref(),
    )
    .await
    {
        Ok(pack) => pack,
        Err(error) => return error_page(&error),
    };
    let Some(file) = pack.files.into_iter().next() else {
        return error_page(&ics_service_kit::ServiceError::not_found("board pack file"));
    };
    let mut response = (StatusCode::OK, file.content).into_response();
    let headers = response.headers_mut();
    if let Ok(content_type) = HeaderValue::from_str(&file.content_type) {
        headers.insert(header::CONTENT_TYPE, content_type);
    }
    // The server names the file: a plain name, no directories.
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file.file_name))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The measures table: what the page shows and what each live update replaces.
fn measures_section(ods: &str, view: &ics_proto::reporting::v1::MeasureView) -> String {
    let mut rows = String::new();
    for row in &view.rows {
        let (variation, assurance) = icons(row);
        rows.push_str(&format!(
            "    <tr><th scope=\"row\"><a href=\"/ics/{ods}/measures/{code}/{trust}\">{measure}</a></th><td>{organisation}</td><td>{period}</td><td class=\"number\">{value}</td><td>{variation}</td><td>{assurance}</td><td>{points}</td></tr>\n",
            ods = escape(ods),
            code = escape(&row.measure_code),
            trust = escape(&row.ods_code),
            measure = escape(&row.measure_name),
            organisation = escape(&row.organisation_name),
            period = date_text(row.latest_period_start.as_ref()),
            value = value_text(row.latest_value, row.display_scale, &row.unit),
            points = row.points,
        ));
    }
    if rows.is_empty() {
        rows.push_str(
            "    <tr><td colspan=\"7\">No measures recorded for the ICS's trusts yet.</td></tr>\n",
        );
    }
    format!(
        r#"<table class="measures">
  <caption>Each trust's measures: the latest value and its Making Data Count variation and assurance</caption>
  <thead><tr><th scope="col">Measure</th><th scope="col">Trust</th><th scope="col">Latest period</th><th scope="col">Latest value</th><th scope="col">Variation</th><th scope="col">Assurance</th><th scope="col">Points</th></tr></thead>
  <tbody>
{rows}  </tbody>
</table>"#
    )
}

/// One trust of the ICS: its row of the overview and its measures with their icons.
async fn trust_page(
    State(dashboard): State<Dashboard>,
    Path((ods, trust_code)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = ics_caller(&dashboard, &headers, &ods) {
        return refused;
    }
    let (name, section) = match trust_section(&dashboard.pool, &ods, &trust_code).await {
        Ok(found) => found,
        Err(error) => return error_page(&error),
    };
    let body = format!(
        r#"{label}<h1>{name}</h1>
<nav aria-label="Views of the ICS"><a href="/ics/{ods}">Overview</a> <a href="/ics/{ods}/measures">Measures</a></nav>
<p class="live-status" id="live-status" role="status">Updates appear here as they happen.</p>
<section id="trust" data-live="/ics/{ods}/trusts/{trust}/live" aria-live="polite">{section}</section>"#,
        label = data_label(&dashboard),
        name = escape(&name),
        ods = escape(&ods),
        trust = escape(&trust_code),
    );
    page_response(StatusCode::OK, &name, &body)
}

/// The trust page's updates (its overview row and its measures).
async fn trust_live(
    State(dashboard): State<Dashboard>,
    Path((ods, trust_code)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let expires_at = match ics_caller(&dashboard, &headers, &ods) {
        Ok((_, expires_at)) => expires_at,
        Err(refused) => return refused,
    };
    live(
        dashboard,
        &[OVERVIEW, crate::MEASURES],
        expires_at,
        move |pool| {
            let (ods, trust_code) = (ods.clone(), trust_code.clone());
            Box::pin(async move {
                trust_section(&pool, &ods, &trust_code)
                    .await
                    .ok()
                    .map(|(_, section)| section)
            })
        },
    )
}

/// One trust's name and tables: its row of the ICS overview and its measures with their icons.
/// A trust outside the ICS reads as unknown, as in the gRPC API.
async fn trust_section(
    pool: &PgPool,
    ods: &str,
    trust_code: &str,
) -> Result<(String, String), ics_service_kit::ServiceError> {
    let today = chrono::Utc::now().date_naive();
    let overview = views::overview(pool, &ics_scope(ods), today).await?;
    let trust = overview
        .trusts
        .iter()
        .find(|trust| trust.ods_code == trust_code)
        .ok_or_else(|| {
            ics_service_kit::ServiceError::not_found(format!("trust {trust_code} in ics {ods}"))
        })?;
    let measures = crate::measures::measure_view(pool, ods, "", today).await?;
    let own: Vec<_> = measures
        .rows
        .iter()
        .filter(|row| row.ods_code == trust_code)
        .collect();
    let mut rows = String::new();
    for row in &own {
        let (variation, assurance) = icons(row);
        rows.push_str(&format!(
            "    <tr><th scope=\"row\"><a href=\"/ics/{ods}/measures/{code}/{trust}\">{measure}</a></th><td>{period}</td><td class=\"number\">{value}</td><td>{variation}</td><td>{assurance}</td></tr>\n",
            ods = escape(ods),
            code = escape(&row.measure_code),
            trust = escape(&row.ods_code),
            measure = escape(&row.measure_name),
            period = date_text(row.latest_period_start.as_ref()),
            value = value_text(row.latest_value, row.display_scale, &row.unit),
        ));
    }
    if rows.is_empty() {
        rows.push_str("    <tr><td colspan=\"5\">No measures recorded for this trust.</td></tr>\n");
    }
    let section = format!(
        r#"{periods}<table class="trusts">
  <caption>{name} in the ICS overview</caption>
{head}
  <tbody>
{summary}  </tbody>
</table>
<table class="measures">
  <caption>Measures of {name}</caption>
  <thead><tr><th scope="col">Measure</th><th scope="col">Latest period</th><th scope="col">Latest value</th><th scope="col">Variation</th><th scope="col">Assurance</th></tr></thead>
  <tbody>
{rows}  </tbody>
</table>"#,
        name = escape(&trust.name),
        head = TRUSTS_HEAD,
        summary = trust_row(trust),
        periods = periods_note(&own),
    );
    Ok((trust.name.clone(), section))
}

/// One series' XmR chart, from the reporting service's own analysis of it.
async fn series_page(
    State(dashboard): State<Dashboard>,
    Path((ods, measure_code, trust)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = ics_caller(&dashboard, &headers, &ods) {
        return refused;
    }
    let (name, section) = match series_section(&dashboard.pool, &ods, &measure_code, &trust).await {
        Ok(found) => found,
        Err(error) => return error_page(&error),
    };
    let body = format!(
        r#"{label}<h1>{name}, {trust}</h1>
<nav aria-label="Views of the ICS"><a href="/ics/{ods}/measures">All measures</a></nav>
<p class="live-status" id="live-status" role="status">Updates appear here as they happen.</p>
<section id="series" data-live="/ics/{ods}/measures/{code}/{trust}/live" aria-live="polite">{section}</section>"#,
        label = data_label(&dashboard),
        name = escape(&name),
        trust = escape(&trust),
        ods = escape(&ods),
        code = escape(&measure_code),
    );
    page_response(StatusCode::OK, &format!("{name} — {trust}"), &body)
}

/// The chart page's updates (the measures projection's changes).
async fn series_live(
    State(dashboard): State<Dashboard>,
    Path((ods, measure_code, trust)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let expires_at = match ics_caller(&dashboard, &headers, &ods) {
        Ok((_, expires_at)) => expires_at,
        Err(refused) => return refused,
    };
    live(dashboard, &[crate::MEASURES], expires_at, move |pool| {
        let (ods, measure_code, trust) = (ods.clone(), measure_code.clone(), trust.clone());
        Box::pin(async move {
            series_section(&pool, &ods, &measure_code, &trust)
                .await
                .ok()
                .map(|(_, section)| section)
        })
    })
}

/// A series' measure name and its XmR chart, from the reporting service's own analysis of the
/// series' stored points.
async fn series_section(
    pool: &PgPool,
    ods: &str,
    measure_code: &str,
    trust: &str,
) -> Result<(String, String), ics_service_kit::ServiceError> {
    let key = ics_proto::events::v1::SeriesKey {
        measure_code: measure_code.to_owned(),
        ods_code: trust.to_owned(),
        value_stream_id: String::new(),
    };
    let today = chrono::Utc::now().date_naive();
    let (measure, series) = crate::measures::ics_series(pool, ods, &key, today).await?;
    let analysis = series.analyse(&measure);
    let labels: Vec<String> = series
        .dated_points()
        .map(|(start, _)| start.format("%b %Y").to_string())
        .collect();
    let chart = ics_charts::xmr_chart(&ics_charts::XmrChart {
        title: &format!("{} — {}", measure.name, trust),
        unit: &measure.unit,
        labels: &labels,
        analysis: &analysis,
        target: series.target(&measure),
    });
    let section = format!(
        r#"<figure class="chart">{chart}<figcaption>XmR chart of {name} for {trust}: {points} points, with the process limits and the target the reporting service computed.</figcaption></figure>"#,
        name = escape(&measure.name),
        trust = escape(trust),
        points = labels.len(),
    );
    Ok((measure.name.clone(), section))
}

/// A value as boards read it: scaled (a proportion as a percentage), without float noise.
fn value_text(value: f64, scale: f64, unit: &str) -> String {
    let scaled = value * if scale > 0.0 { scale } else { 1.0 };
    let rounded = format!("{scaled:.2}");
    let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
    if unit.is_empty() {
        trimmed.to_owned()
    } else {
        format!("{trimmed} {}", escape(unit))
    }
}

fn data_label(dashboard: &Dashboard) -> String {
    dashboard
        .data_label
        .as_deref()
        .map(|label| format!(r#"<p class="data-label" role="note">{}</p>"#, escape(label)))
        .unwrap_or_default()
}

fn error_page(error: &ics_service_kit::ServiceError) -> Response {
    page_response(
        StatusCode::from_u16(http_status(error)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "Not available",
        &format!(
            "<h1>Not available</h1><p>{}</p>",
            escape(&error.to_string())
        ),
    )
}

/// What a measures page's data runs to (the board pack's computation), with a warning when it is
/// not current.
fn periods_note(rows: &[&ics_proto::reporting::v1::MeasureRow]) -> String {
    let Some(newest) = ics_board_pack::newest_period(rows) else {
        return r#"<p class="stale" role="note">No measure has data yet.</p>"#.to_owned();
    };
    let (stale, age) = ics_board_pack::staleness(newest, chrono::Utc::now().date_naive());
    let when = newest.format("%-d %B %Y");
    if stale {
        format!(
            r#"<p class="stale" role="note">The newest data runs to {when}, {} months ago: these figures are not current.</p>"#,
            age / 30
        )
    } else {
        format!(r#"<p class="freshness">The newest data runs to {when}.</p>"#)
    }
}

/// The HTTP status a view's error answers with (the gRPC code's counterpart).
fn http_status(error: &ics_service_kit::ServiceError) -> u16 {
    match error.code() {
        tonic::Code::NotFound => 404,
        tonic::Code::PermissionDenied => 403,
        tonic::Code::InvalidArgument => 400,
        tonic::Code::Unavailable => 503,
        _ => 500,
    }
}

/// The overview's updates: the section again, as HTML, whenever a change of the overview
/// projection alters it; ends when the token expires or the server stops.
async fn ics_live(
    State(dashboard): State<Dashboard>,
    Path(ods): Path<String>,
    headers: HeaderMap,
) -> Response {
    let expires_at = match ics_caller(&dashboard, &headers, &ods) {
        Ok((_, expires_at)) => expires_at,
        Err(refused) => return refused,
    };
    let scope = ics_scope(&ods);
    live(dashboard, &[OVERVIEW], expires_at, move |pool| {
        let scope = scope.clone();
        Box::pin(async move {
            let today = chrono::Utc::now().date_naive();
            views::overview(&pool, &scope, today)
                .await
                .ok()
                .map(|overview| overview_section(&overview))
        })
    })
}

/// The measures page's updates (the measures projection's changes).
async fn measures_live(
    State(dashboard): State<Dashboard>,
    Path(ods): Path<String>,
    headers: HeaderMap,
) -> Response {
    let expires_at = match ics_caller(&dashboard, &headers, &ods) {
        Ok((_, expires_at)) => expires_at,
        Err(refused) => return refused,
    };
    live(
        dashboard,
        &[crate::MEASURES, OVERVIEW],
        expires_at,
        move |pool| {
            let ods = ods.clone();
            Box::pin(async move {
                let today = chrono::Utc::now().date_naive();
                crate::measures::measure_view(&pool, &ods, "", today)
                    .await
                    .ok()
                    .map(|view| measures_section(&ods, &view))
            })
        },
    )
}

/// The programme page's updates (the outcomes projection's changes, and the overview's, which
/// hold membership and names).
async fn programme_live(
    State(dashboard): State<Dashboard>,
    Path(programme): Path<String>,
    headers: HeaderMap,
) -> Response {
    let expires_at = match programme_caller(&dashboard, &headers, &programme) {
        Ok((_, expires_at)) => expires_at,
        Err(refused) => return refused,
    };
    let scope = programme_scope(&programme);
    let records = dashboard.outcome_records.clone();
    live(
        dashboard,
        &[crate::OUTCOMES, OVERVIEW],
        expires_at,
        move |pool| {
            let (scope, records) = (scope.clone(), records.clone());
            Box::pin(async move {
                let today = chrono::Utc::now().date_naive();
                views::outcomes(&pool, &records, &scope, today)
                    .await
                    .ok()
                    .map(|outcomes| outcomes_section(&outcomes))
            })
        },
    )
}

/// A page section kept live: `render` draws it again whenever one of `projections` applies a
/// change, and an `update` event carries it when it differs from what the page shows; the
/// stream ends when the token expires (an `expired` event) or the server stops.
fn live<F>(
    dashboard: Dashboard,
    projections: &'static [&'static str],
    expires_at: Option<SystemTime>,
    render: F,
) -> Response
where
    F: Fn(PgPool) -> futures_util::future::BoxFuture<'static, Option<String>> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    let mut changes = dashboard.changes.subscribe();
    tokio::spawn(async move {
        let mut last: Option<String> = None;
        loop {
            if let Some(section) = render(dashboard.pool.clone()).await
                && last.as_ref() != Some(&section)
            {
                // The first rendering is the one the page already shows.
                if last.is_some() {
                    let event = Event::default().event("update").data(section.clone());
                    if sender
                        .send(Ok::<_, std::convert::Infallible>(event))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                last = Some(section);
            }
            loop {
                let change = tokio::select! {
                    () = dashboard.shutdown.cancelled() => return,
                    () = sender.closed() => return,
                    () = token_expired(expires_at) => {
                        let _ = sender.send(Ok(Event::default().event("expired").data("signed out"))).await;
                        return;
                    }
                    change = changes.recv() => change,
                };
                match change {
                    Ok(change) if projections.contains(&change.projection.as_str()) => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn date_text(date: Option<&ics_proto::events::v1::Date>) -> String {
    date.and_then(ics_proto::date::to_naive)
        .map(|date: NaiveDate| date.format("%-d %B %Y").to_string())
        .unwrap_or_else(|| "—".to_owned())
}

fn cqc_word(rating: i32) -> &'static str {
    use ics_proto::events::v1::CqcRating;
    match CqcRating::try_from(rating) {
        Ok(CqcRating::Outstanding) => "Outstanding",
        Ok(CqcRating::Good) => "Good",
        Ok(CqcRating::RequiresImprovement) => "Requires improvement",
        Ok(CqcRating::Inadequate) => "Inadequate",
        _ => "Not rated",
    }
}

/// The overview's tables: what the page shows and what each live update replaces.
/// The header of a table of trusts, whose rows [`trust_row`] draws.
const TRUSTS_HEAD: &str = r#"  <thead><tr>
    <th scope="col">Trust</th><th scope="col">ODS code</th><th scope="col">CQC overall</th><th scope="col">Rated on</th>
    <th scope="col">Active value streams</th><th scope="col">Executive departures (24 months)</th>
    <th scope="col">Training participants</th><th scope="col">Valued the training</th>
  </tr></thead>"#;

/// A measure row's Making Data Count icons, variation then assurance (a dash where there is
/// none).
fn icons(row: &ics_proto::reporting::v1::MeasureRow) -> (String, String) {
    let none = || "—".to_owned();
    (
        ics_measures::variation_icon(row.variation)
            .map(ics_charts::variation_icon)
            .unwrap_or_else(none),
        ics_measures::assurance_icon(row.assurance)
            .map(ics_charts::assurance_icon)
            .unwrap_or_else(none),
    )
}

fn overview_section(overview: &Overview) -> String {
    let mut rows = String::new();
    for trust in &overview.trusts {
        rows.push_str(&trust_row(trust));
    }
    let streams = overview.value_streams.unwrap_or_default();
    let training = overview.training.unwrap_or_default();
    format!(
        r#"<p>Membership and figures as of <strong>{as_of}</strong>.</p>
<table class="trusts">
  <caption>Trusts of the ICS: CQC rating, value streams, leadership stability and training</caption>
{head}
  <tbody>
{rows}  </tbody>
</table>
<table class="totals">
  <caption>ICS totals</caption>
  <tbody>
    <tr><th scope="row">Value streams</th><td>{active} active, {proposed} proposed, {sustaining} sustaining, {closed} closed</td></tr>
    <tr><th scope="row">Executive departures (24 months)</th><td>{departures}</td></tr>
    <tr><th scope="row">Training</th><td>{participants} participants, {completed} completed, {valued}</td></tr>
  </tbody>
</table>"#,
        as_of = date_text(overview.as_of.as_ref()),
        head = TRUSTS_HEAD,
        active = streams.active,
        proposed = streams.proposed,
        sustaining = streams.sustaining,
        closed = streams.closed,
        departures = overview.executive_departures_24_months,
        participants = training.participants,
        completed = training.completed,
        valued = share_text(&training),
    )
}

fn share_text(training: &ics_proto::reporting::v1::TrainingParticipation) -> String {
    if training.survey_respondents == 0 {
        "no survey responses".to_owned()
    } else {
        format!(
            "{:.0}% of {} respondents valued it",
            training.share_valued * 100.0,
            training.survey_respondents
        )
    }
}

fn trust_row(trust: &TrustSummary) -> String {
    let (rating, rated_on) = match &trust.current_cqc {
        Some(record) => (
            cqc_word(record.ratings.as_ref().map_or(0, |ratings| ratings.overall)),
            date_text(record.published_on.as_ref()),
        ),
        None => ("Not rated", "—".to_owned()),
    };
    let streams = trust.value_streams.unwrap_or_default();
    let training = trust.training.unwrap_or_default();
    format!(
        "    <tr><th scope=\"row\"><a href=\"/ics/{icb}/trusts/{ods}\">{name}</a></th><td>{ods}</td><td class=\"rating\">{rating}</td><td>{rated_on}</td><td>{active}</td><td>{departures}</td><td>{participants}</td><td>{valued}</td></tr>\n",
        icb = escape(&trust.icb_ods_code),
        name = escape(&trust.name),
        ods = escape(&trust.ods_code),
        active = streams.active,
        departures = trust.executive_departures_24_months,
        participants = training.participants,
        valued = share_text(&training),
    )
}

/// A whole page: the skip link, the landmark and the page's own script and styles.
fn page_response(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<main id="main" tabindex="-1">
{body}
</main>
</body>
</html>
"##,
        title = escape(title),
    );
    let mut response = (status, Html(page)).into_response();
    let headers = response.headers_mut();
    // Scripts and styles from this origin only, no framing, no referrer leaking ODS paths.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("dashboard/dashboard.js"),
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("dashboard/dashboard.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_boards_read_them() {
        assert_eq!(value_text(0.6358000000000001, 100.0, "%"), "63.58 %");
        assert_eq!(
            value_text(635.8000000000001, 1.0, "minutes"),
            "635.8 minutes"
        );
        assert_eq!(value_text(12.0, 0.0, ""), "12");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; ics_session=abc.def.ghi; other=1"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc.def.ghi"));
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_under_tls() {
        let plain = session_cookie_value("t.o.k", 60, false);
        assert_eq!(
            plain,
            "ics_session=t.o.k; HttpOnly; SameSite=Strict; Path=/; Max-Age=60"
        );
        assert!(session_cookie_value("t.o.k", 60, true).ends_with("; Secure"));
    }

    #[test]
    fn pages_forbid_framing_and_foreign_scripts() {
        let response = page_response(StatusCode::OK, "t <x>", "<p>body</p>");
        let policy = response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    }
}
