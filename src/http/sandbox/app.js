// The sandbox console's only script: search on the roster page; on the chat page, polling,
// sending, card buttons and the clock panel. Every piece of text it shows either comes as HTML
// the server escaped or is set through textContent / value, never as markup.
(function () {
  'use strict';
  var body = document.body;

  if (body.dataset.page === 'pick') {
    var search = document.getElementById('search');
    var none = document.getElementById('none');
    search.addEventListener('input', function () {
      var q = search.value.trim().toLowerCase();
      var shown = 0;
      document.querySelectorAll('.unit').forEach(function (unit) {
        var any = false;
        unit.querySelectorAll('li').forEach(function (li) {
          var hit = q === '' || li.dataset.search.toLowerCase().indexOf(q) >= 0;
          li.hidden = !hit;
          if (hit) { any = true; shown += 1; }
        });
        unit.hidden = !any;
      });
      none.hidden = shown > 0;
    });
    return;
  }

  var me = body.dataset.as;
  var chat = document.getElementById('chat');
  var input = document.getElementById('input');
  var sendError = document.getElementById('send-error');
  var clockError = document.getElementById('clock-error');
  var version = '';
  // Follow new messages while the reader is at the bottom, also when the clock panel opening
  // shrinks the chat (which fires no scroll event); stop following once they scroll up.
  var follow = true;
  chat.addEventListener('scroll', function () {
    follow = chat.scrollHeight - chat.scrollTop - chat.clientHeight < 80;
  });

  function post(url, data) {
    return fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(data)
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) { throw new Error(j.error || ('HTTP ' + r.status)); }
        return j;
      });
    });
  }

  function showClock(c) {
    document.getElementById('clock-now').textContent = c.now;
    var w = document.getElementById('clock-working');
    w.textContent = c.label;
    w.className = c.working ? 'working' : 'off';
    document.getElementById('clock-moved').textContent = c.moved;
    document.getElementById('to-working').hidden = c.working;
  }

  function poll() {
    var url = '/sandbox/chat?as=' + encodeURIComponent(me) + '&v=' + encodeURIComponent(version);
    return fetch(url).then(function (r) { return r.json(); }).then(function (j) {
      if (j.error) { sendError.textContent = j.error; return; }
      showClock(j.clock);
      if (j.html === null) { return; }
      chat.innerHTML = j.html;
      version = j.version;
      if (follow) { chat.scrollTop = chat.scrollHeight; }
    }).catch(function () {
      sendError.textContent = '无法连接服务，稍后自动重试';
    });
  }

  function send(text) {
    if (text.trim() === '') { return; }
    sendError.textContent = '';
    post('/sandbox/send', { as: me, text: text }).then(function () {
      input.value = '';
      // The inbox processor answers within a fraction of a second.
      follow = true;
      poll().then(function () { setTimeout(poll, 400); });
    }).catch(function (e) { sendError.textContent = e.message; });
  }

  function fill(text) {
    input.value = text;
    input.focus();
  }

  document.getElementById('composer').addEventListener('submit', function (e) {
    e.preventDefault();
    send(input.value);
  });
  input.addEventListener('keydown', function (e) {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME candidate is neither.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send(input.value);
    }
  });
  document.querySelectorAll('[data-send]').forEach(function (b) {
    b.addEventListener('click', function () { send(b.dataset.send); });
  });
  // A unit leader names the liaison from the unit's people: there is no DingTalk @ here.
  var chooser = document.getElementById('liaison-chooser');
  if (chooser) {
    chooser.addEventListener('submit', function (e) {
      e.preventDefault();
      send('设置联络员 ' + chooser.elements.name.value);
    });
  }
  chat.addEventListener('click', function (e) {
    var button = e.target.closest('.card-btn');
    if (button) {
      // A command with arguments to fill in goes to the input box; one without is sent.
      if (button.dataset.fill === '1') { fill(button.dataset.cmd); } else { send(button.dataset.cmd); }
      return;
    }
    var code = e.target.closest('code.cmd');
    if (code) { fill(code.dataset.cmd); }
  });

  function advance(unit, amount) {
    clockError.textContent = '';
    post('/sandbox/clock', { unit: unit, amount: amount }).then(function (j) {
      showClock(j.clock);
      // The scheduler fires what became due; its messages arrive with the next polls.
      setTimeout(poll, 300);
      setTimeout(poll, 1200);
    }).catch(function (e) { clockError.textContent = e.message; });
  }
  document.querySelectorAll('[data-advance]').forEach(function (b) {
    b.addEventListener('click', function () {
      advance(b.dataset.advance, Number(b.dataset.amount));
    });
  });
  document.getElementById('clock-custom').addEventListener('submit', function (e) {
    e.preventDefault();
    var f = e.target;
    advance(f.elements.unit.value, Number(f.elements.amount.value));
  });

  poll();
  setInterval(poll, 1500);
})();
