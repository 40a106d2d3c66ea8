// A second real web WeChat client (wechat4u, from npm) against
// `syncscope serve`. Driven by tests/it/web_clients.rs.
//
//     node wechat4u_session.js SERVER KEY CERT PEER EXPECTED REPLY TIMEOUT_SECS
//
// wechat4u is used as published. Its addresses are the real service's
// (https://login.wx.qq.com/jslogin, then https://<host of the login
// redirect>/cgi-bin/mmwebwx-bin/..., https://webpush.<...>/synccheck):
// nothing in it sets a base URL. So it is pointed at the server the way
// any unmodified HTTP client is: through a proxy (https_proxy, which its
// HTTP library, axios, honours). The proxy here is a few lines below: it
// accepts CONNECT, ends the TLS there (KEY and CERT, a certificate for
// wx.qq.com and *.wx.qq.com that the test made and that node trusts through
// NODE_EXTRA_CA_CERTS) and passes the plain bytes to SERVER (host:port);
// a plain proxy request (absolute-form target) is passed on as it is. The
// server sees wechat4u's requests byte for byte.
//
// Prints {"event": "qr", "uuid"} when wechat4u has its uuid (the test
// confirms the login from a device of the user), {"event": "login", ...}
// when logged in, waits for a text from @PEER whose text is EXPECTED,
// answers it with REPLY and REPLY + " (2)" sent at once (wechat4u makes
// ClientMsgIds from the millisecond clock: two sends in one millisecond
// share one), prints {"event": "received"} and {"event": "sent", ...},
// logs out and exits 0. Every error wechat4u emits is printed as
// {"event": "error"}; a failure exits 1.

'use strict'

const fs = require('fs')
const net = require('net')
const tls = require('tls')

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function describe (err) {
  const r = err && err.response
  return {
    error: String((err && (err.tips || err.message)) || err),
    detail: err && err.tips ? String(err.message) : undefined,
    status: r ? r.status : undefined,
    url: r && r.config ? r.config.url : (err && err.config ? err.config.url : undefined)
  }
}

const [server, keyFile, certFile, peer, expected, reply, limit] = process.argv.slice(2)
const [serverHost, serverPort] = [server.slice(0, server.lastIndexOf(':')), +server.slice(server.lastIndexOf(':') + 1)]
const key = fs.readFileSync(keyFile)
const cert = fs.readFileSync(certFile)

// The proxy: CONNECT ends in TLS here; anything else goes on as it is.
const front = net.createServer(client => {
  let head = Buffer.alloc(0)
  const onData = chunk => {
    head = Buffer.concat([head, chunk])
    const end = head.indexOf('\r\n\r\n')
    if (end < 0) return
    client.removeListener('data', onData)
    client.pause()
    const upstream = net.connect(serverPort, serverHost)
    upstream.on('error', () => client.destroy())
    if (head.slice(0, 8).toString() === 'CONNECT ') {
      const rest = head.slice(end + 4)
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      const secure = new tls.TLSSocket(client, { isServer: true, key, cert })
      if (rest.length) secure.unshift(rest)
      secure.on('error', () => upstream.destroy())
      secure.pipe(upstream).pipe(secure)
    } else {
      upstream.write(head)
      client.pipe(upstream).pipe(client)
    }
    client.resume()
  }
  client.on('data', onData)
  client.on('error', () => {})
})

front.listen(0, '127.0.0.1', () => {
  const proxy = 'http://127.0.0.1:' + front.address().port
  process.env.https_proxy = process.env.HTTPS_PROXY = proxy
  process.env.http_proxy = process.env.HTTP_PROXY = proxy
  delete process.env.no_proxy
  delete process.env.NO_PROXY
  run()
})

function run () {
  const Wechat = require('wechat4u')
  const bot = new Wechat()
  const errors = []
  let done = false

  const finish = code => {
    if (done) return
    done = true
    emit({ event: 'exit', code, errors })
    setTimeout(() => process.exit(code), 1000)
  }
  setTimeout(() => {
    emit({ event: 'error', error: 'timed out after ' + limit + ' s' })
    finish(1)
  }, +limit * 1000)

  bot.on('uuid', uuid => emit({ event: 'qr', uuid }))
  bot.on('error', err => {
    const e = describe(err)
    errors.push(e)
    emit(Object.assign({ event: 'error' }, e))
  })
  bot.on('login', () => {
    emit({
      event: 'login',
      user: bot.user.UserName,
      uin: String(bot.PROP.uin),
      sid_len: bot.PROP.sid.length,
      skey: bot.PROP.skey,
      pass_ticket: bot.PROP.passTicket,
      contacts: Object.keys(bot.contacts).sort()
    })
  })
  bot.on('message', msg => {
    if (msg.FromUserName !== '@' + peer || msg.MsgType !== bot.CONF.MSGTYPE_TEXT) return
    emit({ event: 'received', from_user: msg.FromUserName, to_user: msg.ToUserName, text: msg.Content, msg_id: String(msg.MsgId) })
    if (msg.Content !== expected) {
      emit({ event: 'error', error: 'unexpected text ' + JSON.stringify(msg.Content) })
      return finish(1)
    }
    Promise.all([
      bot.sendMsg(reply, msg.FromUserName),
      bot.sendMsg(reply + ' (2)', msg.FromUserName)
    ]).then(answers => {
      emit({
        event: 'sent',
        rets: answers.map(a => a.BaseResponse.Ret),
        msg_ids: answers.map(a => String(a.MsgID)),
        local_ids: answers.map(a => String(a.LocalID))
      })
      bot.stop()
    }).catch(err => {
      emit(Object.assign({ event: 'error' }, describe(err)))
      finish(1)
    })
  })
  bot.on('logout', () => {
    emit({ event: 'logout' })
    finish(errors.length ? 1 : 0)
  })
  bot.start()
}
