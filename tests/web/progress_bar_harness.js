// The test's own script (tests/web/test_progress_bar_js.py): watch(which, name, url, extra)
// starts a bar and records what it is told; `which` is "theirs" (celery-progress's
// celery_progress.js) or "mine" (celery_progress_mcp.js).
window.outcome = {};
window.violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.violations.push(event.violatedDirective + " " + event.blockedURI);
});
window.watch = function (which, name, url, extra) {
  const seen = window.outcome[name] = {calls: [], progress: [], errors: [], subs: 0, self: true};
  const Bar = which === "theirs" ? CeleryProgressBar : window.CeleryProgressMcpBar;
  const made = (suffix) => {
    const element = document.createElement("div");
    element.id = name + "-" + suffix;
    document.getElementById("bars").append(element);
    return element;
  };
  let bar = null;
  const call = (kind, that) => {
    if (that !== bar) { seen.self = false; }
    if (seen.calls[seen.calls.length - 1] !== kind) { seen.calls.push(kind); }
  };
  const failed = (kind) => function (b, m, text) {
    call(kind, this);
    seen.errors.push(kind + ": " + text);
  };
  const subs = made("subs");
  const options = Object.assign({
    progressBarElement: made("bar"),
    progressBarMessageElement: made("message"),
    resultElement: made("result"),
    subOperationsElement: subs,
    pollInterval: 200,
    onProgress: function (b, m, progress) {
      call("progress", this);
      seen.progress.push(progress);
      seen.subs = Math.max(seen.subs, subs.querySelectorAll("li").length);
      this.onProgressDefault(b, m, progress);
    },
    onSuccess: function (b, m, result) {
      call("success", this);
      this.onSuccessDefault(b, m, result);
    },
    onTaskError: function (b, m, text) {
      call("taskError", this);
      this.onTaskErrorDefault(b, m, text);
    },
    onRetry: function (b, m, text, s) {
      call("retry", this);
      this.onRetryDefault(b, m, text, s);
    },
    onIgnored: function (b, m, result) {
      call("ignored", this);
      this.onIgnoredDefault(b, m, result);
    },
    onResult: function (element, result) {
      call("result", this);
      seen.result = result;
      seen.resulted = true;
      this.onResultDefault(element, result);
    },
    onNetworkError: failed("network"),
    onHttpError: failed("http"),
    onDataError: failed("data"),
  }, extra || {});
  if (options.viaInit) {
    bar = Bar.initProgressBar(url, options);
  } else {
    bar = new Bar(url, options);
    bar.connect().catch((error) => seen.errors.push("thrown: " + error));
  }
};
