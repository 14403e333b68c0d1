import assert from 'node:assert/strict';
import { csvCell, toCsv } from '../../server/web/csv.ts';

describe('audit CSV export', () => {
  it('quotes commas, quotes and line breaks', () => {
    assert.equal(csvCell('a,b'), '"a,b"');
    assert.equal(csvCell('say "hi"'), '"say ""hi"""');
    assert.equal(csvCell('two\nlines'), '"two\nlines"');
    assert.equal(csvCell(null), '');
  });
  it('defuses cells a spreadsheet would run as formulas', () => {
    for (const s of ['=1+1', '+cmd', '-2', '@SUM(A1)', '\tx']) assert.ok(csvCell(s).replace(/^"/, '').startsWith("'"), s);
    assert.equal(csvCell('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
  });
  it('writes a header and CRLF rows', () => {
    assert.equal(toCsv(['a', 'b'], [[1, { x: 1 }]]), 'a,b\r\n1,"{""x"":1}"\r\n');
  });
});
