// The board dashboard in Debian's chromium, as a board member uses it. Started by
// tests/tests/dashboard.rs, which seeds the data and publishes a rating when this script says
// READY on stdout (and answers PUBLISHED on stdin). Exits non-zero, naming each failure, when
// anything a board should see is missing or anything it should not see is shown.
//
// Environment: DASHBOARD_URL, BOARD_TOKEN (a board of ICS_ODS), ICS_ODS, OTHER_ICS_ODS,
// OWN_TRUSTS and OTHER_TRUSTS (comma-separated trust names), LIVE_TRUST (the trust whose rating
// is published while the page is open), DATA_LABEL (the deployment's notice that its data is
// for demonstration), MEASURE_NAME (a measure with a series of one of the ICS's trusts),
// OTHER_TRUST_CODE (a trust of the other ICS), PROGRAMME_ID, PROGRAMME_NAME and PROGRAMME_TOKEN
// (a programme board's), SCREENSHOTS (a directory, optional).

import { chromium } from "playwright-core";
import readline from "node:readline";

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
};
const base = env("DASHBOARD_URL");
const token = env("BOARD_TOKEN");
const ics = env("ICS_ODS");
const otherIcs = env("OTHER_ICS_ODS");
const ownTrusts = env("OWN_TRUSTS").split(",");
const otherTrusts = env("OTHER_TRUSTS").split(",");
const liveTrust = env("LIVE_TRUST");
const dataLabel = env("DATA_LABEL");
const measureName = env("MEASURE_NAME");
const otherTrustCode = env("OTHER_TRUST_CODE");
const programme = env("PROGRAMME_ID");
const programmeName = env("PROGRAMME_NAME");
const programmeToken = env("PROGRAMME_TOKEN");
const screenshots = process.env.SCREENSHOTS;

const failures = [];

// WCAG 2.1 AA 1.4.3: every HTML element with its own text has at least 4.5:1 contrast with its
// effective background (3:1 for large text). Returns the offenders.
const contrastProblems = (page) =>
  page.evaluate(() => {
    const channels = (color) => (color.match(/[\d.]+/g) ?? []).map(Number);
    const luminance = ([r, g, b]) => {
      const linear = (value) => {
        const c = value / 255;
        return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
    };
    const background = (element) => {
      for (let node = element; node; node = node.parentElement) {
        const [r, g, b, a = 1] = channels(getComputedStyle(node).backgroundColor);
        if (a > 0) {
          return [r, g, b];
        }
      }
      return [255, 255, 255];
    };
    const problems = [];
    for (const element of document.body.querySelectorAll("*")) {
      if (element instanceof SVGElement || element.closest("svg")) {
        continue;
      }
      const ownText = [...element.childNodes].some(
        (node) => node.nodeType === Node.TEXT_NODE && node.textContent.trim() !== "",
      );
      const style = getComputedStyle(element);
      if (!ownText || style.visibility === "hidden" || element.getClientRects().length === 0) {
        continue;
      }
      const [lighter, darker] = [luminance(channels(style.color)), luminance(background(element))].sort((a, b) => b - a);
      const ratio = (lighter + 0.05) / (darker + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) {
        problems.push(`${element.tagName.toLowerCase()} "${element.textContent.trim().slice(0, 40)}": ${ratio.toFixed(2)}:1`);
      }
    }
    return problems;
  });
const check = (condition, what) => {
  if (!condition) {
    failures.push(what);
  }
};

const input = readline.createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
const nextLine = async () => (await lines.next()).value;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();

  // 1. Without a token: the sign-in page, and no data.
  const anonymous = await page.goto(`${base}/ics/${ics}`);
  check(anonymous.status() === 401, `a page without a token answered ${anonymous.status()}, not 401`);
  check(await page.locator("form#sign-in textarea#token").isVisible(), "no sign-in form without a token");
  const anonymousText = await page.locator("body").innerText();
  for (const trust of [...ownTrusts, ...otherTrusts]) {
    check(!anonymousText.includes(trust), `the sign-in page shows ${trust}`);
  }
  const wrong = await page.request.get(`${base}/ics/${ics}`, {
    headers: { Authorization: "Bearer not-a-token" },
  });
  check(wrong.status() === 401, `a bad bearer token answered ${wrong.status()}`);
  for (const problem of await contrastProblems(page)) {
    failures.push(`contrast on the sign-in page: ${problem}`);
  }
  if (screenshots) {
    await page.screenshot({ path: `${screenshots}/sign-in.png`, fullPage: true });
  }

  // 2. A sign-in link (token in the fragment) signs in with an HttpOnly cookie.
  await page.goto(`${base}/sign-in#token=${encodeURIComponent(token)}`);
  await page.waitForURL(`${base}/ics/${ics}`);
  const cookies = await context.cookies();
  const session = cookies.find((cookie) => cookie.name === "ics_session");
  check(session?.httpOnly === true, "the session cookie is not HttpOnly");
  check(session?.sameSite === "Strict", `the session cookie is SameSite=${session?.sameSite}`);

  // 3. Its own trusts, none of another ICS's.
  const rows = page.locator("table.trusts tbody tr");
  check((await rows.count()) === ownTrusts.length, `the overview lists ${await rows.count()} trusts, not ${ownTrusts.length}`);
  const text = await page.locator("main").innerText();
  for (const trust of ownTrusts) {
    check(text.includes(trust), `the overview does not show ${trust}`);
  }
  for (const trust of otherTrusts) {
    check(!text.includes(trust), `the overview shows another ICS's ${trust}`);
  }
  check(text.includes(dataLabel), "the page does not say its data is for demonstration");
  check(/The data runs to \d/.test(text), "the page does not say when its data runs to");
  const foreign = await page.goto(`${base}/ics/${otherIcs}`);
  check(foreign.status() === 403, `another ICS's page answered ${foreign.status()}, not 403`);
  const foreignText = await page.locator("body").innerText();
  for (const trust of otherTrusts) {
    check(!foreignText.includes(trust), `another ICS's refusal shows ${trust}`);
  }
  await page.goto(`${base}/ics/${ics}`);

  for (const problem of await contrastProblems(page)) {
    failures.push(`contrast on the overview: ${problem}`);
  }

  // 4. Tables carry their semantics: a caption and header cells with a scope.
  check((await page.locator("table.trusts caption").count()) === 1, "the trusts table has no caption");
  check(
    (await page.locator("table.trusts thead th[scope=col]").count()) >= 5,
    "the trusts table's column headers have no scope",
  );
  check(
    (await page.locator("table.trusts tbody th[scope=row]").count()) === ownTrusts.length,
    "the trusts table's rows have no row headers",
  );

  // 5. By keyboard: the skip link comes first and lands on the content; sign-out is reachable.
  await page.keyboard.press("Tab");
  check(
    (await page.evaluate(() => document.activeElement?.textContent)) === "Skip to content",
    "the first Tab does not reach the skip link",
  );
  await page.keyboard.press("Enter");
  check(
    (await page.evaluate(() => document.activeElement?.id)) === "main",
    "the skip link does not move focus to the content",
  );
  let reachedSignOut = false;
  for (let step = 0; step < 10 && !reachedSignOut; step++) {
    await page.keyboard.press("Tab");
    reachedSignOut = (await page.evaluate(() => document.activeElement?.textContent)) === "Sign out";
  }
  check(reachedSignOut, "Sign out cannot be reached by keyboard");

  // 6. Measures: the Making Data Count icons and the XmR chart render, with text alternatives.
  await page.getByRole("link", { name: "Measures", exact: true }).click();
  await page.waitForURL(`${base}/ics/${ics}/measures`);
  const icons = page.locator("table.measures svg.mdc-icon[role=img]");
  check((await icons.count()) >= 2, `the measures page draws ${await icons.count()} icons, not a variation and an assurance icon`);
  const iconTitles = await icons.evaluateAll((svgs) => svgs.map((svg) => svg.querySelector("title")?.textContent ?? ""));
  check(iconTitles.some((title) => title.startsWith("Variation: ")), `no icon names its variation in words: ${iconTitles}`);
  check(iconTitles.some((title) => title.startsWith("Assurance: ")), `no icon names its assurance in words: ${iconTitles}`);
  const iconBox = await icons.first().boundingBox();
  check(iconBox !== null && iconBox.width >= 16 && iconBox.height >= 16, "the icons are not drawn");
  for (const problem of await contrastProblems(page)) {
    failures.push(`contrast on the measures page: ${problem}`);
  }
  // The series end in 2024: the page must say its figures are old, and how old.
  check(
    /The newest data runs to \d+ \w+ 2024, \d+ months ago: these figures are not current/.test(
      await page.locator("main").innerText(),
    ),
    "the measures page does not warn that its newest data is old",
  );
  const funnel = page.locator("#peers svg[role=img]");
  check((await funnel.count()) >= 1, "the measures page has no funnel plot");
  if ((await funnel.count()) >= 1) {
    const funnelName = await funnel.first().evaluate((svg) => svg.querySelector("title")?.textContent ?? "");
    check(funnelName.includes(measureName), `the funnel plot's accessible name is "${funnelName}"`);
  }
  await page
    .locator("table.measures tbody tr")
    .filter({ hasText: liveTrust })
    .getByRole("link", { name: measureName })
    .click();
  await page.waitForURL(/\/measures\/[^/]+\/[^/]+$/);
  const chart = page.locator("figure.chart svg[role=img]");
  await chart.waitFor();
  const chartBox = await chart.boundingBox();
  check(chartBox !== null && chartBox.width > 200 && chartBox.height > 100, "the XmR chart is not drawn");
  const chartName = await chart.evaluate((svg) => svg.querySelector("title")?.textContent ?? "");
  check(chartName.includes(measureName), `the chart's accessible name is "${chartName}"`);
  check((await page.locator("figure.chart figcaption").innerText()).includes("XmR chart"), "the chart has no caption");
  check((await chart.locator("circle, path").count()) > 10, "the chart has no points or lines");
  if (screenshots) {
    await page.screenshot({ path: `${screenshots}/chart.png`, fullPage: true });
  }
  await page.goto(`${base}/ics/${ics}/measures`);
  if (screenshots) {
    await page.screenshot({ path: `${screenshots}/measures.png`, fullPage: true });
  }

  // 7. A trust's drill-down: its own row and measures; another ICS's trust is not found.
  await page.goto(`${base}/ics/${ics}`);
  await page.getByRole("link", { name: liveTrust }).click();
  await page.locator("h1", { hasText: liveTrust }).waitFor();
  check((await page.locator("table.measures tbody svg.mdc-icon").count()) >= 2, "the trust page has no measure icons");
  const outsider = await page.goto(`${base}/ics/${ics}/trusts/${otherTrustCode}`);
  check(outsider.status() === 404, `another ICS's trust answered ${outsider.status()}, not 404`);
  await page.goto(`${base}/ics/${ics}`);

  // 8. Board packs download, computed by the service: one table per CSV file, no float noise.
  const csv = await page.request.get(`${base}/ics/${ics}/board-pack/measures.csv`);
  check(csv.status() === 200, `the measures CSV answered ${csv.status()}`);
  check((csv.headers()["content-type"] ?? "").startsWith("text/csv"), "the measures CSV is not text/csv");
  const csvText = await csv.text();
  check(csvText.includes(measureName) && !/\d\.\d*0000000\d/.test(csvText), `the measures CSV: ${csvText.slice(0, 300)}`);
  const packPage = await page.request.get(`${base}/ics/${ics}/board-pack/board-pack.html`);
  const packHtml = await packPage.text();
  check(packPage.status() === 200 && packHtml.includes("<svg"), "the HTML board pack has no charts");
  check(packHtml.includes(dataLabel), "the HTML board pack does not say its data is for demonstration");
  check(packHtml.includes('<td class="icon"><svg'), "the HTML board pack draws no Making Data Count icons");
  check(packHtml.includes("these figures are not current"), "the HTML board pack does not warn that its data is old");
  check(
    (packPage.headers()["content-disposition"] ?? "").startsWith("attachment"),
    "the HTML board pack is not a download",
  );
  const foreignPack = await page.request.get(`${base}/ics/${otherIcs}/board-pack/measures.csv`);
  check(foreignPack.status() === 403, `another ICS's board pack answered ${foreignPack.status()}`);
  const foreignProgramme = await page.request.get(`${base}/programmes/${programme}`);
  check(foreignProgramme.status() === 403, `a programme the board is not on answered ${foreignProgramme.status()}`);

  // 9. A programme's board lands on its programme's outcomes.
  const programmeContext = await browser.newContext();
  const programmePage = await programmeContext.newPage();
  await programmePage.goto(`${base}/sign-in#token=${encodeURIComponent(programmeToken)}`);
  await programmePage.waitForURL(`${base}/programmes/${programme}`);
  check(
    (await programmePage.locator("h1").innerText()) === programmeName,
    "the programme page is not headed by the programme's name",
  );
  check(
    (await programmePage.locator("table caption", { hasText: "Headline" }).count()) === 1,
    "the programme page has no headline table",
  );
  for (const problem of await contrastProblems(programmePage)) {
    failures.push(`contrast on the programme page: ${problem}`);
  }
  const crossing = await programmePage.goto(`${base}/ics/${ics}`);
  check(crossing.status() === 403, `a programme board reading an ICS page got ${crossing.status()}`);
  if (screenshots) {
    await programmePage.goto(`${base}/programmes/${programme}`);
    await programmePage.screenshot({ path: `${screenshots}/programme.png`, fullPage: true });
  }
  await programmeContext.close();

  // 10. Live: a rating published over gRPC appears without a reload within a second.
  const liveRow = page.locator("table.trusts tbody tr", { hasText: liveTrust });
  check(!(await liveRow.innerText()).includes("Outstanding"), `${liveTrust} is already Outstanding`);
  // Let the page's event stream connect before the rating is published.
  await page.waitForTimeout(500);
  console.log("READY");
  check((await nextLine()) === "PUBLISHED", "the test did not publish the rating");
  const published = Date.now();
  try {
    await liveRow.locator("td.rating", { hasText: "Outstanding" }).waitFor({ timeout: 1000 });
    console.error(`live: the rating appeared ${Date.now() - published} ms after it was acknowledged`);
  } catch {
    failures.push(`the published rating did not appear on the open page within 1 s`);
  }
  if (screenshots) {
    await page.screenshot({ path: `${screenshots}/overview.png`, fullPage: true });
  }

  // 11. The measures page is live too: a new month recorded over gRPC shows without a reload.
  await page.goto(`${base}/ics/${ics}/measures`);
  const liveMeasure = page.locator("table.measures tbody tr").filter({ hasText: measureName }).filter({ hasText: liveTrust });
  const points = liveMeasure.locator("td").last();
  const pointsBefore = Number(await points.innerText());
  await page.waitForTimeout(500);
  console.log("MEASURES_READY");
  check((await nextLine()) === "RECORDED", "the test did not record the observation");
  try {
    await liveMeasure.locator("td", { hasText: String(pointsBefore + 1) }).waitFor({ timeout: 2000 });
  } catch {
    failures.push(`the recorded observation did not reach the open measures page within 2 s (${pointsBefore} points)`);
  }
} finally {
  await browser.close();
  input.close();
}

if (failures.length > 0) {
  console.error(failures.map((failure) => `FAILED: ${failure}`).join("\n"));
  process.exit(1);
}
console.log("OK");
