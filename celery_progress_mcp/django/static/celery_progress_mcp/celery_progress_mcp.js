/*
 * celery_progress_mcp.js: celery-progress's CeleryProgressBar, following the task live.
 *
 * A page written for celery-progress's celery_progress.js works with this script in its
 * place: the same class (CeleryProgressBar, also named CeleryProgressMcpBar), the same
 * constructor options, callbacks (same arguments, `this` the bar) and *Default methods, the
 * same handling of every answer (success, failure, retry, ignored, progress, pending, unknown
 * states) and the same DOM writes (the bar's width and colour, the message and result text).
 *
 * What it adds:
 *
 * - It follows the task over Server-Sent Events: progressUrl + "stream/" (option `streamUrl`
 *   to name another, `stream: false` to poll only). Each `progress` message is the answer the
 *   polling endpoint would give at that moment, handled exactly as a polled one. Where
 *   EventSource is missing, or the stream cannot open, fails, or sends nothing within
 *   `streamTimeout` ms, the stream is closed and progressUrl is polled every `pollInterval`
 *   ms, as celery-progress does: never both at once.
 * - The `sub_operations` of each streamed answer (a task's stages, a group's members) are
 *   shown as small bars with name and percent in `subOperationsElement`, or the element of
 *   id `subOperationsElementId` (default "progress-bar-sub-operations"); nothing is drawn
 *   without one. `onSubOperations(element, subOperations)` replaces the drawing.
 * - Every element with a `data-celery-progress-url` attribute gets a bar when the page has
 *   loaded, drawn in its own elements of classes `cpm-bar` (the track, whose aria-valuenow
 *   follows), `cpm-bar-fill`, `cpm-message`, `cpm-result` and `cpm-sub-operations` (the markup
 *   of the Django app's {% progress_bar %} tag); optional attributes
 *   `data-celery-progress-stream-url`, `data-celery-progress-stream="false"` and
 *   `data-celery-progress-poll-interval` (ms). `CeleryProgressBar.initAll(root)` does the same
 *   for markup added later.
 * - `bar.stop()` stops following.
 *
 * Text from the task (messages, results, names) is written with textContent only. Nothing is
 * evaluated and no style attribute is written as a string, so the script runs under a strict
 * Content-Security-Policy (script-src 'self'). Plain ES2017, no dependencies, no build step.
 */
(function (global) {
  "use strict";

  /** Polling interval when the options give none, in ms (celery-progress's). */
  const DEFAULT_POLL_INTERVAL_MS = 500;
  /** Fetch attempts of one poll before it gives up (celery-progress's). */
  const DEFAULT_NETWORK_ATTEMPTS = 5;
  /** Pause after a failed fetch, in ms (celery-progress's). */
  const NETWORK_RETRY_DELAY_MS = 1000;
  /** How long the stream may take to send its first answer before polling takes over, in ms. */
  const DEFAULT_STREAM_TIMEOUT_MS = 10000;
  /** The attribute that asks for a bar when the page loads. */
  const URL_ATTRIBUTE = "data-celery-progress-url";
  /** The element that shows the sub-operations, when the options name none. */
  const SUB_OPERATIONS_ID = "progress-bar-sub-operations";
  /** Which of barColors each sub-operation status is drawn in. */
  const SUB_OPERATION_COLOURS = {
    pending: "progress",
    active: "progress",
    completed: "success",
    failed: "error",
    cancelled: "error",
    skipped: "ignored",
  };

  function ignore() {}

  function pause(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** progressUrl with "stream/" after its path (its query kept), or null if it is no URL. */
  function streamUrlOf(progressUrl) {
    try {
      const url = new URL(progressUrl, document.baseURI);
      url.pathname = url.pathname.replace(/\/?$/, "/") + "stream/";
      return url.href;
    } catch (error) {
      return null;
    }
  }

  /** Whether the page's CSS gives the element no height of its own. */
  function unstyled(element) {
    const height = global.getComputedStyle(element).height;
    return height === "0px" || height === "auto" || height === "";
  }

  /** A plain look for a track and its fill, only where the page's CSS gives them none. */
  function lookIfUnstyled(track, fill) {
    if (!track || !fill || track === fill) {
      return;
    }
    if (unstyled(track)) {
      track.style.height = "0.5em";
      track.style.backgroundColor = "#e9ecef";
    }
    if (unstyled(fill)) {
      fill.style.height = "100%";
    }
  }

  function percentOf(value) {
    const number = Number(value);
    return Number.isFinite(number) ? Math.min(100, Math.max(0, number)) : 0;
  }

  function element(tag, className) {
    const made = document.createElement(tag);
    made.className = className;
    return made;
  }

  class CeleryProgressBar {
    constructor(progressUrl, options) {
      this.progressUrl = progressUrl;
      options = options || {};
      const progressBarId = options.progressBarId || "progress-bar";
      const progressBarMessageId = options.progressBarMessageId || "progress-bar-message";
      this.progressBarElement =
        options.progressBarElement || document.getElementById(progressBarId);
      this.progressBarMessageElement =
        options.progressBarMessageElement || document.getElementById(progressBarMessageId);
      this.onProgress = options.onProgress || this.onProgressDefault;
      this.onSuccess = options.onSuccess || this.onSuccessDefault;
      this.onError = options.onError || this.onErrorDefault;
      this.onTaskError = options.onTaskError || this.onTaskErrorDefault;
      this.onDataError = options.onDataError || this.onError;
      this.onRetry = options.onRetry || this.onRetryDefault;
      this.onIgnored = options.onIgnored || this.onIgnoredDefault;
      const resultElementId = options.resultElementId || "celery-result";
      this.resultElement = options.resultElement || document.getElementById(resultElementId);
      this.onResult = options.onResult || this.onResultDefault;
      this.onNetworkError = options.onNetworkError || this.onError;
      this.onHttpError = options.onHttpError || this.onError;
      this.pollInterval = options.pollInterval || DEFAULT_POLL_INTERVAL_MS;
      this.maxNetworkRetryAttempts = options.maxNetworkRetryAttempts || DEFAULT_NETWORK_ATTEMPTS;
      this.barColors = Object.assign(
        {},
        this.constructor.getBarColorsDefault(),
        options.barColors
      );
      const defaultMessages = {
        waiting: "Waiting for task to start...",
        started: "Task started...",
      };
      this.messages = Object.assign({}, defaultMessages, options.defaultMessages);

      // What this script adds to celery-progress's.
      this.streamUrl = options.streamUrl || streamUrlOf(progressUrl);
      this.useStream = options.stream !== false && Boolean(this.streamUrl);
      this.streamTimeout = options.streamTimeout || DEFAULT_STREAM_TIMEOUT_MS;
      const subOperationsId = options.subOperationsElementId || SUB_OPERATIONS_ID;
      this.subOperationsElement =
        options.subOperationsElement || document.getElementById(subOperationsId);
      this.onSubOperations = options.onSubOperations || this.onSubOperationsDefault;
      /** The open stream, or null. */
      this.eventSource = null;
      this.streamTried = false;
      this.stopped = false;
      this.subOperationRows = new Map();
    }

    // -- celery-progress's callbacks, as it draws them -------------------------------------

    onSuccessDefault(progressBarElement, progressBarMessageElement, result) {
      result = this.getMessageDetails(result);
      if (progressBarElement) {
        progressBarElement.style.backgroundColor = this.barColors.success;
      }
      if (progressBarMessageElement) {
        progressBarMessageElement.textContent = "Success! " + result;
      }
    }

    onResultDefault(resultElement, result) {
      if (resultElement) {
        resultElement.textContent = result;
      }
    }

    /** Every error's drawing; `data` is the Response of an HTTP error, else undefined. */
    onErrorDefault(progressBarElement, progressBarMessageElement, excMessage, data) {
      if (progressBarElement) {
        progressBarElement.style.backgroundColor = this.barColors.error;
      }
      excMessage = excMessage || "";
      if (progressBarMessageElement) {
        progressBarMessageElement.textContent = "Uh-Oh, something went wrong! " + excMessage;
      }
    }

    onTaskErrorDefault(progressBarElement, progressBarMessageElement, excMessage) {
      const details = this.getMessageDetails(excMessage);
      this.onError(progressBarElement, progressBarMessageElement, details);
    }

    onRetryDefault(progressBarElement, progressBarMessageElement, excMessage, retrySeconds) {
      if (progressBarElement) {
        progressBarElement.style.backgroundColor = this.barColors.error;
      }
      if (progressBarMessageElement) {
        progressBarMessageElement.textContent =
          "Retrying after " + retrySeconds + "s: " + excMessage;
      }
    }

    onIgnoredDefault(progressBarElement, progressBarMessageElement, result) {
      if (progressBarElement) {
        progressBarElement.style.backgroundColor = this.barColors.ignored;
      }
      if (progressBarMessageElement) {
        progressBarMessageElement.textContent = result || "Task result ignored!";
      }
    }

    onProgressDefault(progressBarElement, progressBarMessageElement, progress) {
      if (progressBarElement) {
        progressBarElement.style.backgroundColor = this.barColors.progress;
        progressBarElement.style.width = progress.percent + "%";
      }
      if (!progressBarMessageElement) {
        return;
      }
      const description = progress.description || "";
      // Loose on purpose, as celery-progress: a current of "0" is no progress either.
      if (progress.current == 0) {
        progressBarMessageElement.textContent =
          progress.pending === true ? this.messages.waiting : this.messages.started;
      } else {
        progressBarMessageElement.textContent =
          progress.current + " of " + progress.total + " processed. " + description;
      }
    }

    getMessageDetails(result) {
      return this.resultElement ? "" : result || "";
    }

    /**
     * Handle one answer, polled or streamed.
     * @return true when the task is complete, false when not, undefined when `data` is invalid
     */
    onData(data) {
      let done = false;
      if (data.progress) {
        this.onProgress(this.progressBarElement, this.progressBarMessageElement, data.progress);
      }
      if (data.complete === true) {
        done = true;
        if (data.success === true) {
          this.onSuccess(this.progressBarElement, this.progressBarMessageElement, data.result);
        } else if (data.success === false) {
          if (data.state === "RETRY") {
            this.onRetry(
              this.progressBarElement,
              this.progressBarMessageElement,
              data.result.message,
              data.result.next_retry_seconds
            );
            done = false;
            delete data.result;
          } else {
            this.onTaskError(this.progressBarElement, this.progressBarMessageElement, data.result);
          }
        } else if (data.state === "IGNORED") {
          this.onIgnored(this.progressBarElement, this.progressBarMessageElement, data.result);
          delete data.result;
        } else {
          done = undefined;
          this.onDataError(this.progressBarElement, this.progressBarMessageElement, "Data Error");
        }
        if (Object.prototype.hasOwnProperty.call(data, "result")) {
          this.onResult(this.resultElement, data.result);
        }
      } else if (data.complete === undefined) {
        done = undefined;
        this.onDataError(this.progressBarElement, this.progressBarMessageElement, "Data Error");
      }
      return done;
    }

    // -- sub-operations --------------------------------------------------------------------

    /**
     * Draw each sub-operation as a small bar with its name and percent, in the answer's order:
     * `li` rows in the element itself when it is a list (`ul`, `ol`), else in a `ul` made in it.
     */
    onSubOperationsDefault(subOperationsElement, subOperations) {
      if (!subOperationsElement) {
        return;
      }
      let list = this.subOperationList;
      if (!list || (list !== subOperationsElement && list.parentNode !== subOperationsElement)) {
        subOperationsElement.textContent = "";
        if (/^(UL|OL)$/.test(subOperationsElement.tagName)) {
          list = subOperationsElement;
        } else {
          list = element("ul", "cpm-sub-list");
          subOperationsElement.appendChild(list);
        }
        this.subOperationList = list;
        this.subOperationRows.clear();
      }
      const rows = this.subOperationRows;
      const shown = new Set();
      for (const sub of subOperations) {
        const key = String(sub.id);
        shown.add(key);
        let row = rows.get(key);
        if (!row) {
          row = this.subOperationRow();
          rows.set(key, row);
        }
        list.appendChild(row.item); // moves a known row into the answer's order
        if (!row.looked) {
          lookIfUnstyled(row.track, row.fill);
          row.looked = true;
        }
        this.drawSubOperation(row, sub);
      }
      for (const [key, row] of rows) {
        if (!shown.has(key)) {
          row.item.remove();
          rows.delete(key);
        }
      }
    }

    /** The elements of one sub-operation's row. */
    subOperationRow() {
      const item = element("li", "cpm-sub-operation");
      const name = element("span", "cpm-sub-name");
      // Both a bar's classes and a row's own: the main bar's style sheet draws them too.
      const track = element("div", "cpm-bar cpm-sub-bar");
      const fill = element("div", "cpm-bar-fill cpm-sub-bar-fill");
      const percent = element("span", "cpm-sub-percent");
      track.setAttribute("role", "progressbar");
      track.setAttribute("aria-valuemin", "0");
      track.setAttribute("aria-valuemax", "100");
      track.appendChild(fill);
      item.appendChild(name);
      item.appendChild(track);
      item.appendChild(percent);
      return { item, name, track, fill, percent, looked: false };
    }

    drawSubOperation(row, sub) {
      const percent = percentOf(sub.percentage);
      const status = String(sub.status || "");
      const name = String(sub.name || sub.id || "");
      row.item.setAttribute("data-status", status);
      row.name.textContent = name;
      row.track.setAttribute("aria-label", name);
      row.track.setAttribute("aria-valuenow", String(percent));
      row.fill.style.width = percent + "%";
      row.fill.style.backgroundColor = this.barColors[SUB_OPERATION_COLOURS[status] || "progress"];
      row.percent.textContent = Math.round(percent) + "%";
    }

    // -- following the task ----------------------------------------------------------------

    /**
     * Follow the task: over the stream when it can, else by polling.
     * @return a promise settled once the first answer is handled (rejected as
     *   celery-progress's connect() is: the network failed on every attempt, or the answer
     *   was no JSON)
     */
    connect() {
      if (this.useStream && !this.streamTried && typeof global.EventSource === "function") {
        this.streamTried = true;
        return this.listen();
      }
      return this.poll();
    }

    /** One poll of progressUrl, as celery-progress's connect(); the next is scheduled. */
    async poll() {
      let response;
      let lastError = null;
      for (let attempt = 0; attempt < this.maxNetworkRetryAttempts; attempt++) {
        try {
          response = await fetch(this.progressUrl);
          break;
        } catch (networkError) {
          lastError = networkError;
          this.onNetworkError(
            this.progressBarElement,
            this.progressBarMessageElement,
            "Network Error"
          );
          await pause(NETWORK_RETRY_DELAY_MS);
        }
      }
      if (response === undefined) {
        throw lastError;
      }
      if (this.stopped) {
        return;
      }
      if (response.status !== 200) {
        this.onHttpError(
          this.progressBarElement,
          this.progressBarMessageElement,
          "HTTP Code " + response.status,
          response
        );
        return;
      }
      let data;
      try {
        data = await response.json();
      } catch (parsingError) {
        this.onDataError(this.progressBarElement, this.progressBarMessageElement, "Parsing Error");
        throw parsingError;
      }
      if (this.onData(data) === false && !this.stopped) {
        // Its failures are drawn by the callbacks; nobody awaits the promise.
        setTimeout(() => this.poll().catch(ignore), this.pollInterval);
      }
    }

    /** Follow the stream; on its failure, poll instead (the stream closed first). */
    listen() {
      return new Promise((resolve, reject) => {
        let source;
        try {
          source = new global.EventSource(this.streamUrl);
        } catch (refused) {
          resolve(this.poll());
          return;
        }
        this.eventSource = source;
        let answered = false;
        const fallBack = () => {
          if (this.eventSource !== source) {
            return; // closed already: complete, stopped, or fallen back
          }
          clearTimeout(timer);
          this.closeStream();
          const polling = this.poll();
          if (answered) {
            polling.catch(ignore);
          } else {
            answered = true;
            resolve(polling);
          }
        };
        const timer = setTimeout(() => {
          if (!answered) {
            fallBack();
          }
        }, this.streamTimeout);
        source.addEventListener("progress", (event) => {
          if (this.eventSource !== source) {
            return;
          }
          let data;
          try {
            data = JSON.parse(event.data);
          } catch (parsingError) {
            fallBack();
            return;
          }
          const first = !answered;
          answered = true;
          clearTimeout(timer);
          let done;
          try {
            if (Array.isArray(data.sub_operations)) {
              this.onSubOperations(this.subOperationsElement, data.sub_operations);
            }
            done = this.onData(data);
          } catch (error) {
            this.closeStream();
            if (first) {
              reject(error); // as celery-progress's connect() rejects
              return;
            }
            throw error;
          }
          if (done !== false) {
            this.closeStream(); // complete, or invalid: celery-progress stops polling too
          }
          resolve();
        });
        // A connection that fails or ends, and the server's own `error` message.
        source.addEventListener("error", fallBack);
      });
    }

    closeStream() {
      if (this.eventSource) {
        this.eventSource.close();
        this.eventSource = null;
      }
    }

    /** Stop following the task: the stream is closed, no further poll is made. */
    stop() {
      this.stopped = true;
      this.closeStream();
    }

    // -- construction ------------------------------------------------------------------------

    static getBarColorsDefault() {
      return {
        success: "#76ce60",
        error: "#dc4f63",
        progress: "#68a9ef",
        ignored: "#7a7a7a",
      };
    }

    static initProgressBar(progressUrl, options) {
      const bar = new this(progressUrl, options);
      bar.connect();
      return bar;
    }

    /** The bar of an element with data-celery-progress-url, drawn in its own elements only. */
    static fromElement(container) {
      const subOperationsElement = container.querySelector(".cpm-sub-operations");
      // The container's first of a class outside its sub-operations (whose rows have bars too).
      const find = (name) =>
        Array.from(container.querySelectorAll("." + name)).find(
          (found) => !subOperationsElement || !subOperationsElement.contains(found)
        ) || null;
      const data = container.dataset;
      const track = find("cpm-bar");
      const options = {
        progressBarElement: find("cpm-bar-fill") || track,
        progressBarMessageElement: find("cpm-message"),
        resultElement: find("cpm-result"),
        subOperationsElement: subOperationsElement,
      };
      if (data.celeryProgressStreamUrl) {
        options.streamUrl = data.celeryProgressStreamUrl;
      }
      if (data.celeryProgressStream === "false") {
        options.stream = false;
      }
      const interval = Number(data.celeryProgressPollInterval);
      if (interval > 0) {
        options.pollInterval = interval;
      }
      const bar = new this(data.celeryProgressUrl, options);
      // Absent ones stay absent: never another bar's elements, found by a default id.
      bar.progressBarElement = options.progressBarElement;
      bar.progressBarMessageElement = options.progressBarMessageElement;
      bar.resultElement = options.resultElement;
      bar.subOperationsElement = options.subOperationsElement;
      lookIfUnstyled(track, options.progressBarElement);
      if (track && track !== options.progressBarElement) {
        // Readers of the page hear the bar move: the track says its value.
        const draw = bar.onProgress;
        bar.onProgress = function (progressBarElement, progressBarMessageElement, progress) {
          track.setAttribute("aria-valuenow", String(percentOf(progress.percent)));
          return draw.call(this, progressBarElement, progressBarMessageElement, progress);
        };
      }
      return bar;
    }

    /** A bar for each element with data-celery-progress-url in `root` (the document) not yet followed. */
    static initAll(root) {
      const scope = root || document;
      const containers = Array.from(scope.querySelectorAll("[" + URL_ATTRIBUTE + "]"));
      if (scope.nodeType === 1 && scope.hasAttribute(URL_ATTRIBUTE)) {
        containers.unshift(scope);
      }
      const bars = [];
      for (const container of containers) {
        if (container.celeryProgressBar) {
          continue;
        }
        const bar = this.fromElement(container);
        container.celeryProgressBar = bar;
        bar.connect().catch(ignore); // failures are drawn by the callbacks
        bars.push(bar);
      }
      return bars;
    }
  }

  global.CeleryProgressBar = CeleryProgressBar;
  // A second name, for a page that loads celery-progress's script as well.
  global.CeleryProgressMcpBar = CeleryProgressBar;

  const start = () => CeleryProgressBar.initAll(document);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})(window);
